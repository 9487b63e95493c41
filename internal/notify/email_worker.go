package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/riverqueue/river"
	"github.com/wneessen/go-mail"

	"github.com/waybill/waybill/internal/truncate"
)

type emailWorker struct {
	river.WorkerDefaults[EmailArgs]
	n *Notifier
}

func (w *emailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	n := w.n
	msg := renderEmail(job.Args)
	o := outcome{
		kind:       "email",
		target:     n.mailTarget,
		subject:    msg.subject,
		body:       msg.text,
		orderID:    job.Args.OrderID,
		externalID: job.Args.ExternalID,
	}
	if n.mail == nil {
		o.skipReason = n.mailSkip
		return finish(ctx, n, job, o)
	}
	if err := n.mail.send(ctx, n.mailTo, msg, n.now()); err != nil {
		return err
	}
	return finish(ctx, n, job, o)
}

// mailer sends through one SMTP server. A go-mail Client holds one connection, so each send
// builds its own from the options validated at start.
type mailer struct {
	host string
	from string
	opts []mail.Option
}

// newMailer reads SMTP_URL: smtp:// speaks STARTTLS when the server offers it and plain SMTP
// otherwise (sinks like Mailpit); smtps:// is TLS from the first byte. Credentials in the URL
// turn on SMTP AUTH, negotiated by go-mail, which never sends a password in clear text (PLAIN and
// LOGIN only over TLS) — so a stripped STARTTLS fails the send rather than leak it.
func newMailer(rawURL, from string, tlsConfig *tls.Config) (*mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("SMTP_URL: not a URL") // url.Parse's error would echo the password
	}
	port := 25
	opts := []mail.Option{}
	switch u.Scheme {
	case "smtp":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "smtps":
		port = 465
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("SMTP_URL: scheme must be smtp (STARTTLS when offered) or smtps (implicit TLS), not %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("SMTP_URL: missing host, e.g. smtp://user:pass@mail.example.com:587")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("SMTP_URL: port must be 1-65535, not %q", p)
		}
	}
	if _, err := netmail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("MAIL_FROM: not an email address: %q", from)
	}

	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tlsConfig != nil {
		tc = tlsConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	opts = append(opts, mail.WithPort(port), mail.WithTLSConfig(tc))
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(user), mail.WithPassword(pass))
	}
	m := &mailer{host: host, from: from, opts: opts}
	if _, err := mail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("SMTP_URL: %w", err)
	}
	return m, nil
}

func (m *mailer) send(ctx context.Context, to []string, e email, now time.Time) error {
	msg := mail.NewMsg()
	if err := msg.From(m.from); err != nil {
		return fmt.Errorf("email: from: %w", err)
	}
	if err := msg.To(to...); err != nil {
		return fmt.Errorf("email: to: %w", err)
	}
	msg.Subject(e.subject)
	msg.SetDateWithValue(now)
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, e.text)
	msg.AddAlternativeString(mail.TypeTextHTML, e.html)

	c, err := mail.NewClient(m.host, m.opts...)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		if errors.Is(err, mail.ErrNoSupportedAuthDiscovered) {
			return fmt.Errorf("email via %s: refusing to send the SMTP password without TLS (the server offers no STARTTLS, or only PLAIN/LOGIN): %w", m.host, err)
		}
		return fmt.Errorf("email via %s: %w", m.host, err)
	}
	return nil
}

// email is one rendered message.
type email struct {
	subject, text, html string
}

// renderEmail builds the order email, or the alarm's own subject and body when it has them.
func renderEmail(a EmailArgs) email {
	if a.Subject != "" || a.Body != "" {
		subject := a.Subject
		if subject == "" {
			subject, _, _ = strings.Cut(strings.TrimSpace(a.Body), "\n")
		}
		return email{
			subject: oneLine(subject),
			text:    a.Body,
			html:    execute(noticeHTML, a.Body),
		}
	}
	d := orderEmailData{EmailArgs: a, StatusText: strings.ReplaceAll(a.Status, "_", " ")}
	if !a.OccurredAt.IsZero() {
		d.When = a.OccurredAt.UTC().Format("Mon 2 Jan 2006 15:04 MST")
	}
	return email{
		subject: oneLine(fmt.Sprintf("[Waybill] %s: order %s", a.Status, a.ExternalID)),
		text:    execute(orderText, d),
		html:    execute(orderHTML, d),
	}
}

type orderEmailData struct {
	EmailArgs
	StatusText string
	When       string
}

// execute runs a template whose data is fixed by this file, so it cannot fail at run time.
func execute(t interface {
	Execute(io.Writer, any) error
}, data any) string {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		panic(fmt.Sprintf("notify: template: %v", err))
	}
	return b.String()
}

// oneLine keeps a subject to one header line of reasonable length: an external_id or alarm
// title may hold a newline.
func oneLine(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	return truncate.Runes(s, 200)
}

var orderText = texttemplate.Must(texttemplate.New("order.txt").Parse(`Order {{.ExternalID}} ({{.Carrier}}): {{.StatusText}}.

Carrier status: {{or .CarrierStatus "-"}}
Reason:         {{or .Reason "(the carrier gave none)"}}
Recipient:      {{or .Recipient "-"}}
Address:        {{or .Address "-"}}
Tracking:       {{or .TrackingURL "-"}}
When:           {{or .When "-"}}
Waybill order:  {{.OrderID}}

Sent by Waybill. Reply to the carrier or the recipient; this mailbox is not read.
`))

// html/template escapes every value; a tracking URL that is not http(s) becomes "#ZgotmplZ".
var orderHTML = htmltemplate.Must(htmltemplate.New("order.html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif; font-size: 14px">
<p>Order <strong>{{.ExternalID}}</strong> ({{.Carrier}}): <strong>{{.StatusText}}</strong>.</p>
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">Carrier status</th><td>{{or .CarrierStatus "-"}}</td></tr>
<tr><th align="left">Reason</th><td>{{or .Reason "(the carrier gave none)"}}</td></tr>
<tr><th align="left">Recipient</th><td>{{or .Recipient "-"}}</td></tr>
<tr><th align="left">Address</th><td>{{or .Address "-"}}</td></tr>
<tr><th align="left">Tracking</th><td>{{if .TrackingURL}}<a href="{{.TrackingURL}}">{{.TrackingURL}}</a>{{else}}-{{end}}</td></tr>
<tr><th align="left">When</th><td>{{or .When "-"}}</td></tr>
<tr><th align="left">Waybill order</th><td>{{.OrderID}}</td></tr>
</table>
<p style="color: #666">Sent by Waybill. Reply to the carrier or the recipient; this mailbox is not read.</p>
</body></html>
`))

var noticeHTML = htmltemplate.Must(htmltemplate.New("notice.html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif; font-size: 14px">
<div style="white-space: pre-wrap">{{.}}</div>
</body></html>
`))

// parseAddressList reads a comma-separated list of addresses: the To header values and, for the
// record, the bare addresses.
func parseAddressList(s string) (to []string, bare string, err error) {
	list, err := netmail.ParseAddressList(s)
	if err != nil {
		return nil, "", fmt.Errorf("not a comma-separated list of email addresses: %q", s)
	}
	addrs := make([]string, len(list))
	for i, a := range list {
		to = append(to, a.String())
		addrs[i] = a.Address
	}
	return to, strings.Join(addrs, ", "), nil
}
