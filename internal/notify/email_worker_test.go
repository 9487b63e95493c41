package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

type smtpMode int

const (
	smtpPlain    smtpMode = iota // no TLS at all, like Mailpit
	smtpSTARTTLS                 // offers STARTTLS with a self-signed certificate
	smtpImplicit                 // TLS from the first byte (smtps)
)

// smtpSink is a real SMTP server, in process, that keeps what it receives.
type smtpSink struct {
	addr     string
	roots    *x509.CertPool // trusts the sink's self-signed certificate
	user     string         // when set, AUTH PLAIN is offered (over TLS only) and required
	password string

	mu       sync.Mutex
	received []sunkMessage
	authSeen []string // user names of every AUTH attempt
}

type sunkMessage struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authUser string
}

func startSMTP(t *testing.T, mode smtpMode, user, password string) *smtpSink {
	t.Helper()
	cert, roots := selfSignedCert(t)
	sink := &smtpSink{roots: roots, user: user, password: password}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{sink: sink, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = smtpQuietLog{}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch mode {
	case smtpPlain:
		s.AllowInsecureAuth = true // a careless server: offers AUTH PLAIN in clear text
	case smtpSTARTTLS:
		s.TLSConfig = tlsCfg
	case smtpImplicit:
		l = tls.NewListener(l, tlsCfg)
	}
	sink.addr = l.Addr().String()
	go s.Serve(l) //nolint:errcheck // returns when closed
	t.Cleanup(func() { s.Close() })
	return sink
}

func (s *smtpSink) url(scheme, userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return scheme + "://" + userinfo + s.addr
}

func (s *smtpSink) messages() []sunkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMessage(nil), s.received...)
}

func (s *smtpSink) authAttempts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authSeen...)
}

type smtpSession struct {
	sink *smtpSink
	conn *smtp.Conn
	msg  sunkMessage
}

func (s *smtpSession) AuthMechanisms() []string {
	if s.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.sink.mu.Lock()
		s.sink.authSeen = append(s.sink.authSeen, user)
		s.sink.mu.Unlock()
		if user != s.sink.user || pass != s.sink.password {
			return errors.New("invalid credentials")
		}
		s.msg.authUser = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.sink.user != "" && s.msg.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.msg.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = data
	_, s.msg.tls = s.conn.TLSConnectionState()
	s.sink.mu.Lock()
	s.sink.received = append(s.sink.received, s.msg)
	s.sink.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.msg = sunkMessage{authUser: s.msg.authUser} }
func (s *smtpSession) Logout() error { return nil }

type smtpQuietLog struct{}

func (smtpQuietLog) Printf(string, ...any) {}
func (smtpQuietLog) Println(...any)        {}

func selfSignedCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "waybill test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

// parsedMail is a received message taken apart the way a mail client would.
type parsedMail struct {
	header netmail.Header
	parts  map[string]string // media type → decoded body
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	p := parsedMail{header: m.Header, parts: map[string]string{}}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		ct, ctParams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "utf-8", strings.ToLower(ctParams["charset"]))
		body, err := io.ReadAll(part)
		require.NoError(t, err)
		p.parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n") // SMTP line ends
	}
	return p
}

func (p parsedMail) subject(t *testing.T) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(p.header.Get("Subject"))
	require.NoError(t, err)
	return s
}

var problemEmail = EmailArgs{
	OrderID:       42,
	ExternalID:    "SO-1001",
	Carrier:       "onfleet",
	Status:        "failed_attempt",
	CarrierStatus: "taskFailed",
	Reason:        `Gate locked <script>alert("x")</script> & dog`,
	Recipient:     "Jane Doe +15551234567",
	Address:       "1 Main St, Springfield, US",
	TrackingURL:   "https://onf.lt/abc123",
	OccurredAt:    time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC),
}

// Each way of reaching an SMTP server, end to end through River.
func TestEmailTransports(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     smtpMode
		user     string // the server requires AUTH as this user (password "p@ss word")
		smtpURL  func(s *smtpSink) string
		wantTLS  bool
		wantAuth string
	}{
		{
			name:     "STARTTLS offered, credentials in the URL",
			mode:     smtpSTARTTLS,
			user:     "mailer",
			smtpURL:  func(s *smtpSink) string { return s.url("smtp", "mailer:p%40ss%20word") },
			wantTLS:  true,
			wantAuth: "mailer",
		},
		{
			// Credentials are only for AUTH: none in the URL, no AUTH attempted.
			name:    "STARTTLS offered, no credentials",
			mode:    smtpSTARTTLS,
			smtpURL: func(s *smtpSink) string { return s.url("smtp", "") },
			wantTLS: true,
		},
		{
			name:    "plain sink without STARTTLS, like Mailpit",
			mode:    smtpPlain,
			smtpURL: func(s *smtpSink) string { return s.url("smtp", "") },
		},
		{
			name:     "implicit TLS",
			mode:     smtpImplicit,
			user:     "mailer",
			smtpURL:  func(s *smtpSink) string { return s.url("smtps", "mailer:p%40ss%20word") },
			wantTLS:  true,
			wantAuth: "mailer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink := startSMTP(t, tt.mode, tt.user, "p@ss word")
			b := setup(t, Config{
				SMTPURL:        tt.smtpURL(sink),
				LogisticsEmail: "a@example.com, b@example.com",
				TLSConfig:      &tls.Config{RootCAs: sink.roots},
			}, testOpts{})

			requireCompleted(t, b.work(t, problemEmail))
			msgs := sink.messages()
			require.Len(t, msgs, 1)
			require.Equal(t, tt.wantTLS, msgs[0].tls)
			require.Equal(t, tt.wantAuth, msgs[0].authUser)
			if tt.wantAuth == "" {
				require.Empty(t, sink.authAttempts())
			}
			require.Equal(t, "waybill@localhost", msgs[0].from)
			require.Equal(t, []string{"a@example.com", "b@example.com"}, msgs[0].to)
			require.Contains(t, parseMail(t, msgs[0].data).parts["text/plain"], "SO-1001")
		})
	}
}

func TestEmailOrderMessage(t *testing.T) {
	t.Parallel()
	sink := startSMTP(t, smtpPlain, "", "")
	b := setup(t, Config{
		SMTPURL:        sink.url("smtp", ""),
		MailFrom:       "Waybill <waybill@example.com>",
		LogisticsEmail: "logistics@example.com",
	}, testOpts{})

	requireCompleted(t, b.work(t, problemEmail))

	msgs := sink.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "waybill@example.com", msgs[0].from)
	m := parseMail(t, msgs[0].data)
	require.Equal(t, "[Waybill] failed_attempt: order SO-1001", m.subject(t))
	from, err := m.header.AddressList("From")
	require.NoError(t, err)
	require.Equal(t, []*netmail.Address{{Name: "Waybill", Address: "waybill@example.com"}}, from)
	to, err := m.header.AddressList("To")
	require.NoError(t, err)
	require.Equal(t, []*netmail.Address{{Address: "logistics@example.com"}}, to)
	date, err := m.header.Date()
	require.NoError(t, err)
	require.True(t, testNow.Equal(date), "Date header %s", date)
	require.NotEmpty(t, m.header.Get("Message-Id"))

	text := m.parts["text/plain"]
	for _, want := range []string{"SO-1001", "failed attempt", "taskFailed", problemEmail.Reason, "Jane Doe +15551234567",
		"1 Main St, Springfield, US", "https://onf.lt/abc123", "Tue 4 Mar 2025 05:00 UTC"} {
		require.Contains(t, text, want)
	}

	html := m.parts["text/html"]
	require.Contains(t, html, "<strong>SO-1001</strong>")
	require.Contains(t, html, `Gate locked &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; dog`)
	require.NotContains(t, html, "<script>")
	require.Contains(t, html, `<a href="https://onf.lt/abc123">https://onf.lt/abc123</a>`)

	rows := b.notifications(t)
	require.Len(t, rows, 1)
	require.Equal(t, "email", rows[0].Kind)
	require.Equal(t, "sent", rows[0].Outcome)
	require.Nil(t, rows[0].SkipReason)
	require.Equal(t, "logistics@example.com", rows[0].Target)
	require.Equal(t, "[Waybill] failed_attempt: order SO-1001", rows[0].Subject)
	require.Equal(t, text, rows[0].Body)
	require.Equal(t, int64(42), rows[0].OrderID.Int64)
	require.Equal(t, "SO-1001", *rows[0].ExternalID)
}

// Certificates are verified: a server whose certificate is not trusted gets nothing, and the job
// fails for River to retry.
func TestEmailUntrustedCertificateFails(t *testing.T) {
	t.Parallel()
	sink := startSMTP(t, smtpSTARTTLS, "", "")
	b := setup(t, Config{SMTPURL: sink.url("smtp", ""), LogisticsEmail: "l@example.com"}, testOpts{})

	msg := requireFailed(t, b.work(t, problemEmail))
	require.Contains(t, msg, "certificate")
	require.Empty(t, sink.messages())
	require.Empty(t, b.notifications(t))
}

// Without TLS a password is never sent: the job fails instead of leaking it.
func TestEmailNoPasswordInClearText(t *testing.T) {
	t.Parallel()
	sink := startSMTP(t, smtpPlain, "mailer", "secret")
	b := setup(t, Config{SMTPURL: sink.url("smtp", "mailer:secret"), LogisticsEmail: "l@example.com"}, testOpts{})

	msg := requireFailed(t, b.work(t, problemEmail))
	require.Contains(t, msg, "refusing to send the SMTP password without TLS")
	require.Empty(t, sink.authAttempts())
	require.Empty(t, sink.messages())
}

func TestEmailAlarmSubjectAndBody(t *testing.T) {
	t.Parallel()
	sink := startSMTP(t, smtpPlain, "", "")
	b := setup(t, Config{SMTPURL: sink.url("smtp", ""), LogisticsEmail: "l@example.com"}, testOpts{})

	body := "3 orders dispatched more than 24h ago have had no carrier event:\n\nSO-1 <b>\nSO-2\nSO-3"
	requireCompleted(t, b.work(t, EmailArgs{Subject: "Waybill: 3 silent orders\r\nBcc: x@evil.example", Body: body}))

	msgs := sink.messages()
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"l@example.com"}, msgs[0].to)
	m := parseMail(t, msgs[0].data)
	require.Equal(t, "Waybill: 3 silent orders Bcc: x@evil.example", m.subject(t))
	require.Empty(t, m.header.Get("Bcc"))
	require.Equal(t, body, m.parts["text/plain"])
	require.Contains(t, m.parts["text/html"], "SO-1 &lt;b&gt;")
	require.NotContains(t, m.parts["text/html"], "<b>")

	rows := b.notifications(t)
	require.Len(t, rows, 1)
	require.False(t, rows[0].OrderID.Valid)
	require.Nil(t, rows[0].ExternalID)
}
