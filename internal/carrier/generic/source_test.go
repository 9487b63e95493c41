package generic

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
)

const testSecret = "acme-test-secret"

// Computed outside Go over testdata/acme/delivery_complete.json, byte for byte:
//
//	openssl dgst -sha256 -hmac acme-test-secret delivery_complete.json
//	openssl dgst -sha256 -hmac acme-test-secret -binary delivery_complete.json | base64
const (
	completeHex    = "47c42533b5cc8005eea0b675fb00150b78932be0c7b49433fb52a0785e3f3322"
	completeBase64 = "R8QlM7XMgAXuoLZ1+wAVC3iTK+DHtJQz+1KgeF4/MyI="
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "acme", name+".json"))
	require.NoError(t, err)
	return b
}

// exampleSource is the example file's acme webhook source, with changes to its YAML.
func exampleSource(t testing.TB, env map[string]string, replace ...string) *Source {
	t.Helper()
	c, err := New(exampleConfig(t, env, replace...), nil)
	require.NoError(t, err)
	return c.WebhookSource()
}

// hmacOf is computed here with crypto/hmac, apart from the code under test.
func hmacOf(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

func header(name, value string) http.Header {
	h := http.Header{}
	if value != "" {
		h.Set(name, value)
	}
	return h
}

func TestSourceVerify(t *testing.T) {
	t.Parallel()
	body := readFixture(t, "delivery_complete")
	require.Equal(t, completeHex, hex.EncodeToString(hmacOf(testSecret, body)), "the fixture is the one the vector was computed over")

	hexSrc := exampleSource(t, acmeEnv(""))
	const h = "X-Acme-Signature"
	require.NoError(t, hexSrc.Verify(body, header(h, "sha256="+completeHex)))
	require.NoError(t, hexSrc.Verify(body, header(h, " SHA256="+strings.ToUpper(completeHex)+" ")), "hex and prefix in either case")
	require.ErrorIs(t, hexSrc.Verify(body, header(h, "")), carrier.ErrUnsigned)
	require.ErrorIs(t, hexSrc.Verify(body, header("X-Other", "sha256="+completeHex)), carrier.ErrUnsigned)
	require.ErrorIs(t, hexSrc.Verify(body, header(h, completeHex)), carrier.ErrBadSignature, "prefix missing")
	require.ErrorIs(t, hexSrc.Verify(body, header(h, "sha256="+completeHex[:62])), carrier.ErrBadSignature, "short")
	require.ErrorIs(t, hexSrc.Verify(body, header(h, "sha256=zz"+completeHex[2:])), carrier.ErrBadSignature, "not hex")
	require.ErrorIs(t, hexSrc.Verify(append(body, ' '), header(h, "sha256="+completeHex)), carrier.ErrBadSignature, "body changed")
	require.ErrorIs(t, hexSrc.Verify(body, header(h, "sha256="+hex.EncodeToString(hmacOf("other", body)))), carrier.ErrBadSignature, "other secret")

	b64Src := exampleSource(t, acmeEnv(""), "scheme: hmac-sha256-hex", "scheme: hmac-sha256-base64",
		`prefix: "sha256="`, `prefix: "hmac-sha256-base64="`)
	require.NoError(t, b64Src.Verify(body, header(h, "hmac-sha256-base64="+completeBase64)))
	require.NoError(t, b64Src.Verify(body, header(h, "hmac-sha256-base64="+strings.TrimRight(completeBase64, "="))), "unpadded")
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(completeBase64)
	require.NoError(t, b64Src.Verify(body, header(h, "hmac-sha256-base64="+urlSafe)), "URL-safe alphabet")
	require.ErrorIs(t, b64Src.Verify(body, header(h, "hmac-sha256-base64="+completeHex)), carrier.ErrBadSignature, "hex where base64 is due")
	require.ErrorIs(t, b64Src.Verify(body, header(h, "sha256="+completeBase64)), carrier.ErrBadSignature, "wrong prefix")

	// No prefix configured, SHA-512, a hex-encoded secret.
	secret512 := []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	src512 := exampleSource(t, map[string]string{"ACME_API_KEY": "k", "ACME_WEBHOOK_SECRET": hex.EncodeToString(secret512)},
		"scheme: hmac-sha256-hex", "scheme: hmac-sha512-hex", `prefix: "sha256="`, `prefix: ""`, "secret_encoding: raw", "secret_encoding: hex")
	m := hmac.New(sha512.New, secret512)
	m.Write(body)
	require.NoError(t, src512.Verify(body, header(h, hex.EncodeToString(m.Sum(nil)))))
	require.ErrorIs(t, src512.Verify(body, header(h, "sha256="+completeHex)), carrier.ErrBadSignature)
}

// While a secret is rotated, both verify.
func TestSourceVerifyRotation(t *testing.T) {
	t.Parallel()
	body := readFixture(t, "delivery_created")
	src := exampleSource(t, map[string]string{"ACME_API_KEY": "k", "ACME_WEBHOOK_SECRET": "old-secret, new-secret"})
	for _, secret := range []string{"old-secret", "new-secret"} {
		require.NoError(t, src.Verify(body, header("X-Acme-Signature", "sha256="+hex.EncodeToString(hmacOf(secret, body)))), secret)
	}
	require.ErrorIs(t, src.Verify(body, header("X-Acme-Signature", "sha256="+hex.EncodeToString(hmacOf(testSecret, body)))), carrier.ErrBadSignature)
}

func TestSourceParse(t *testing.T) {
	t.Parallel()
	src := exampleSource(t, acmeEnv(""))
	require.Equal(t, "acme", src.Name())

	tests := []struct {
		fixture string
		want    carrier.Event
		details string
		tr      carrier.Translation
	}{
		{
			fixture: "delivery_created",
			want: carrier.Event{Carrier: "acme", EventKey: "evt_01HQ3Z8KX1", TaskID: "dlv_7Hq2LmN4", ExternalID: "SO-1001",
				CarrierStatus: "created", OccurredAt: time.Date(2025, 3, 1, 12, 0, 5, 0, time.UTC),
				TrackingURL: "https://track.acme.example/dlv_7Hq2LmN4"},
			details: `{"eta": null}`, // courier.name is not there: left out
			tr:      carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDispatched},
		},
		{
			fixture: "delivery_complete",
			want: carrier.Event{Carrier: "acme", EventKey: "evt_01HQ3ZC4V7", TaskID: "dlv_7Hq2LmN4", ExternalID: "SO-1001",
				CarrierStatus: "complete", OccurredAt: time.Date(2025, 3, 1, 14, 42, 17, 250e6, time.UTC),
				TrackingURL: "https://track.acme.example/dlv_7Hq2LmN4"},
			details: `{"courier": "Jo Rider", "eta": "2025-03-01T14:40:00Z"}`,
			tr:      carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDelivered},
		},
		{
			fixture: "attempt_failed",
			want: carrier.Event{Carrier: "acme", EventKey: "evt_01HQ3ZD0AA", TaskID: "dlv_5Tr8PqZ1", ExternalID: "SO-1002",
				CarrierStatus: "attempt_failed", OccurredAt: time.Date(2025, 3, 1, 16, 5, 0, 0, time.UTC),
				Reason: "Recipient not at home; card left", TrackingURL: "https://track.acme.example/dlv_5Tr8PqZ1"},
			details: `{"courier": "Jo Rider", "eta": null}`,
			tr:      carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusFailedAttempt},
		},
		{
			fixture: "eta_updated",
			want: carrier.Event{Carrier: "acme", EventKey: "evt_01HQ3ZB2QP", TaskID: "dlv_7Hq2LmN4", ExternalID: "SO-1001",
				CarrierStatus: "eta_updated", OccurredAt: time.Date(2025, 3, 1, 13, 10, 0, 0, time.UTC),
				TrackingURL: "https://track.acme.example/dlv_7Hq2LmN4"},
			details: `{"courier": "Jo Rider", "eta": "2025-03-01T14:40:00Z"}`,
			tr:      carrier.Translation{Outcome: carrier.OutcomeRecord},
		},
		{
			fixture: "ping",
			want: carrier.Event{Carrier: "acme", EventKey: "evt_01HQ3Z0000", CarrierStatus: "ping",
				OccurredAt: time.Date(2025, 3, 1, 11, 59, 0, 0, time.UTC)},
			details: `{}`,
			tr:      carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "ping is not about a delivery"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			ev, err := src.Parse(readFixture(t, tt.fixture))
			require.NoError(t, err)
			require.JSONEq(t, tt.details, string(ev.Details))
			ev.Details = nil
			require.Equal(t, tt.want, ev)
			require.Equal(t, tt.tr, src.Vocabulary().Translate(ev))
		})
	}
}

// JSON that is not what the configuration describes is stored and quarantined, keyed by its
// bytes; what is not JSON is refused.
func TestSourceParseUnreadable(t *testing.T) {
	t.Parallel()
	src := exampleSource(t, acmeEnv(""))
	base := readFixture(t, "delivery_complete")
	with := func(path string, v any) []byte {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(base, &doc))
		node := doc
		steps := strings.Split(path, ".")
		for _, s := range steps[:len(steps)-1] {
			node = node[s].(map[string]any)
		}
		if v == nil {
			delete(node, steps[len(steps)-1])
		} else {
			node[steps[len(steps)-1]] = v
		}
		b, err := json.Marshal(doc)
		require.NoError(t, err)
		return b
	}
	unreadable := map[string]struct {
		body    []byte
		problem string
	}{
		"array":           {[]byte(`[1, 2]`), "the body is an array, not a JSON object"},
		"string":          {[]byte(`"complete"`), "the body is a string, not a JSON object"},
		"no status":       {with("data.status", nil), "no status at data.status"},
		"empty status":    {with("data.status", ""), "empty status at data.status"},
		"status object":   {with("data.status", map[string]any{"code": "complete"}), "status at data.status is an object, not a value"},
		"no event id":     {with("id", nil), "no event id at id"},
		"task id list":    {with("data.delivery_id", []any{"a"}), "task id at data.delivery_id is an array, not a value"},
		"no time":         {with("occurred_at", nil), "no time at occurred_at"},
		"time not rfc":    {with("occurred_at", "yesterday"), "time at occurred_at is not rfc3339: yesterday"},
		"time as number":  {with("occurred_at", 1740830400), "time at occurred_at is not rfc3339: 1740830400"},
		"time as bool":    {with("occurred_at", true), "time at occurred_at is a boolean"},
		"time year 10000": {with("occurred_at", "10000-01-01T00:00:00Z"), "time at occurred_at is not rfc3339: 10000-01-01T00:00:00Z"},
	}
	for name, tt := range unreadable {
		ev, err := src.Parse(tt.body)
		require.NoError(t, err, name)
		require.Equal(t, tt.problem, ev.Problem, name)
		require.Equal(t, carrier.BodyKey(tt.body), ev.EventKey, name)
		require.JSONEq(t, `{}`, string(ev.Details), name)
		require.Equal(t, carrier.OutcomeQuarantine, src.Vocabulary().Translate(ev).Outcome, name)
	}

	// A word the vocabulary lacks is quarantined too, with the event otherwise read.
	ev, err := src.Parse(with("data.status", "teleported"))
	require.NoError(t, err)
	require.Empty(t, ev.Problem)
	require.Equal(t, carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: `unknown carrier status "teleported"`}, src.Vocabulary().Translate(ev))

	for _, body := range []string{``, `{`, `{"id": "x"} {"id": "y"}`, "\xff", `{"a": 1,}`} {
		_, err := src.Parse([]byte(body))
		require.ErrorIs(t, err, carrier.ErrNotJSON, body)
	}
}

// Without event_id a redelivery is recognised by its bytes; unix and unix_ms times.
func TestSourceParseVariants(t *testing.T) {
	t.Parallel()
	body := readFixture(t, "delivery_complete")
	src := exampleSource(t, acmeEnv(""), "      event_id: id # what", "      # what")
	ev, err := src.Parse(body)
	require.NoError(t, err)
	require.Equal(t, carrier.BodyKey(body), ev.EventKey)
	require.Empty(t, ev.Problem)

	times := []struct {
		format, value string
		want          time.Time
		ok            bool
	}{
		{"unix", `1740830400`, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"unix", `"1740830400"`, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"unix", `1740830400.5`, time.Date(2025, 3, 1, 12, 0, 0, 500e6, time.UTC), true},
		{"unix", `0`, time.Time{}, false},
		{"unix", `-5`, time.Time{}, false},
		{"unix", `1e300`, time.Time{}, false},
		{"unix", `"2025-03-01T12:00:00Z"`, time.Time{}, false},
		{"unix_ms", `1740830400123`, time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC), true},
		{"unix_ms", `"1740830400123"`, time.Date(2025, 3, 1, 12, 0, 0, 123e6, time.UTC), true},
		{"unix_ms", `1740830400123.5`, time.Time{}, false},
		{"unix_ms", `99999999999999999999`, time.Time{}, false},
		{"rfc3339", `"2025-03-01T13:00:00+01:00"`, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), true},
		{"rfc3339", `"2025-03-01 12:00:00"`, time.Time{}, false},
	}
	for _, tt := range times {
		src := exampleSource(t, acmeEnv(""), "time_format: rfc3339", "time_format: "+tt.format)
		b := []byte(`{"id": "e", "occurred_at": ` + tt.value + `, "data": {"delivery_id": "d", "status": "complete"}}`)
		ev, err := src.Parse(b)
		require.NoError(t, err)
		if !tt.ok {
			require.Contains(t, ev.Problem, "time at occurred_at", "%s %s", tt.format, tt.value)
			continue
		}
		require.Empty(t, ev.Problem, "%s %s", tt.format, tt.value)
		require.Equal(t, tt.want, ev.OccurredAt, "%s %s", tt.format, tt.value)
	}
}

// FuzzParse: whatever a holder of the secret sends, Parse never panics, and an event it
// accepts can be stored and translated.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "acme", "*.json"))
	require.NoError(f, err)
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"id": 1e400, "occurred_at": null, "data": []}`))
	f.Add([]byte(`{"id": true, "occurred_at": "2025-03-01T12:00:00Z", "data": {"delivery_id": 7, "status": 3}}`))
	f.Add([]byte(`{"id": "x", "occurred_at": "2025-03-01T12:00:00Z", "data": {"status": "complete", "courier": {"name": [1, {"a": null}]}}}`))

	src := exampleSource(f, acmeEnv(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := src.Parse(body)
		if err != nil {
			require.ErrorIs(t, err, carrier.ErrNotJSON)
			require.False(t, json.Valid(body))
			return
		}
		require.NotEmpty(t, ev.EventKey)
		require.Equal(t, "acme", ev.Carrier)
		require.True(t, json.Valid(ev.Details))
		if ev.Problem == "" {
			require.NotEmpty(t, ev.CarrierStatus)
			require.False(t, ev.OccurredAt.IsZero())
			_, err := json.Marshal(ev.OccurredAt) // River encodes it in the act job
			require.NoError(t, err)
		}
		tr := src.Vocabulary().Translate(ev)
		if tr.Outcome == carrier.OutcomeStatus {
			require.True(t, tr.Status.Known())
			require.NotEmpty(t, ev.TaskID)
		}
	})
}

// FuzzVerify: Verify never panics, accepts exactly the right signature, and refuses the rest.
func FuzzVerify(f *testing.F) {
	f.Add(readFixture(f, "delivery_complete"), "sha256="+completeHex)
	f.Add(readFixture(f, "ping"), "")
	f.Add([]byte("{}"), "sha256=zz")
	src := exampleSource(f, acmeEnv(""))
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if src.Verify(body, header("X-Acme-Signature", sig)) == nil {
			got, _ := strings.CutPrefix(strings.ToLower(strings.TrimSpace(sig)), "sha256=")
			require.Equal(t, hex.EncodeToString(hmacOf(testSecret, body)), got)
		}
		require.NoError(t, src.Verify(body, header("X-Acme-Signature", "sha256="+hex.EncodeToString(hmacOf(testSecret, body)))))
	})
}
