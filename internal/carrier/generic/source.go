package generic

import (
	"cmp"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// signatureSchemes are the HMACs a carrier may sign webhooks with, by scheme name.
var signatureSchemes = map[string]struct {
	newHash  func() hash.Hash
	size     int
	encoding string // hex or base64
}{
	"hmac-sha256-hex":    {sha256.New, sha256.Size, "hex"},
	"hmac-sha256-base64": {sha256.New, sha256.Size, "base64"},
	"hmac-sha512-hex":    {sha512.New, sha512.Size, "hex"},
	"hmac-sha512-base64": {sha512.New, sha512.Size, "base64"},
}

// Time formats of webhook.time.
const (
	TimeRFC3339 = "rfc3339"
	TimeUnix    = "unix"    // seconds since 1970, a number or numeric string, fractions allowed
	TimeUnixMS  = "unix_ms" // whole milliseconds since 1970
)

// maxEventTime keeps event times encodable: Go's JSON encoding of a time (River job args)
// refuses years past 9999.
var maxEventTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// compiledWebhook is a checked webhook section.
type compiledWebhook struct {
	newHash    func() hash.Hash
	size       int
	encoding   string
	header     string
	prefix     string
	keys       [][]byte
	eventID    Path
	taskID     Path
	externalID Path
	status     Path
	time       Path
	timeFormat string
	reason     Path
	tracking   Path
	details    map[string]Path
}

// Source reads a configured carrier's webhooks. It implements carrier.Source and is safe for
// concurrent use.
type Source struct {
	name       string
	cfg        *compiledWebhook
	vocabulary carrier.Vocabulary
}

var _ carrier.Source = (*Source)(nil)

// Name implements carrier.Source: the carrier's name.
func (s *Source) Name() string { return s.name }

// Vocabulary implements carrier.Source: the carriers file's vocabulary.
func (s *Source) Vocabulary() carrier.Vocabulary { return s.vocabulary }

// Verify implements carrier.Source: the signature header holds prefix + the HMAC of the raw
// body, hex or base64, under one of the configured secrets.
func (s *Source) Verify(body []byte, header http.Header) error {
	sig := strings.TrimSpace(header.Get(s.cfg.header))
	if sig == "" {
		return carrier.ErrUnsigned
	}
	if s.cfg.prefix != "" {
		if len(sig) < len(s.cfg.prefix) || !strings.EqualFold(sig[:len(s.cfg.prefix)], s.cfg.prefix) {
			return carrier.ErrBadSignature
		}
		sig = sig[len(s.cfg.prefix):]
	}
	mac, err := decodeMAC(s.cfg.encoding, sig)
	if err != nil || len(mac) != s.cfg.size {
		return carrier.ErrBadSignature
	}
	return carrier.CheckHMAC(s.cfg.newHash, s.cfg.keys, body, mac)
}

// decodeMAC reads a signature: hex in either case, or base64 standard or URL-safe, padded or
// not.
func decodeMAC(encoding, sig string) ([]byte, error) {
	if encoding == "hex" {
		return hex.DecodeString(sig)
	}
	sig = strings.TrimRight(sig, "=")
	if strings.ContainsAny(sig, "-_") {
		return base64.RawURLEncoding.DecodeString(sig)
	}
	return base64.RawStdEncoding.DecodeString(sig)
}

// Parse implements carrier.Source. The event key is the event id when webhook.event_id is
// configured, else a hash of the body. JSON that lacks what the configuration says is there
// (the status, the time, the event id) parses into an Event with a Problem: it is stored and
// quarantined, never guessed at.
func (s *Source) Parse(body []byte) (carrier.Event, error) {
	doc, err := decodeJSON(body)
	if err != nil {
		return carrier.Event{}, fmt.Errorf("%w: %v", carrier.ErrNotJSON, err)
	}
	ev := carrier.Event{Carrier: s.name}
	if _, ok := doc.(map[string]any); !ok {
		return s.unreadable(ev, body, fmt.Sprintf("the body is %s, not a JSON object", describe(doc))), nil
	}
	c := s.cfg

	var problem string
	text := func(name string, p Path, required bool) string {
		if p.IsZero() || problem != "" {
			return ""
		}
		v, ok := p.Lookup(doc)
		if !ok || v == nil {
			if required {
				problem = fmt.Sprintf("no %s at %s", name, p)
			}
			return ""
		}
		t, ok := scalarText(v)
		switch {
		case !ok:
			problem = fmt.Sprintf("%s at %s is %s, not a value", name, p, describe(v))
		case required && t == "":
			problem = fmt.Sprintf("empty %s at %s", name, p)
		}
		return t
	}
	ev.CarrierStatus = text("status", c.status, true)
	eventID := text("event id", c.eventID, true)
	ev.TaskID = text("task id", c.taskID, false)
	ev.ExternalID = text("external id", c.externalID, false)
	ev.Reason = text("reason", c.reason, false)
	ev.TrackingURL = text("tracking url", c.tracking, false)
	if problem != "" {
		return s.unreadable(ev, body, problem), nil
	}
	ev.OccurredAt, problem = eventTime(doc, c.time, c.timeFormat)
	if problem != "" {
		return s.unreadable(ev, body, problem), nil
	}
	ev.EventKey = eventID
	if c.eventID.IsZero() {
		ev.EventKey = carrier.BodyKey(body)
	}

	details := make(map[string]any, len(c.details))
	for name, p := range c.details {
		if v, ok := p.Lookup(doc); ok {
			details[name] = v
		}
	}
	ev.Details, err = json.Marshal(details)
	if err != nil {
		return carrier.Event{}, fmt.Errorf("%s webhook details: %w", s.name, err)
	}
	return ev, nil
}

// eventTime reads the event's time in format; problem says why it cannot.
func eventTime(doc any, p Path, format string) (t time.Time, problem string) {
	v, ok := p.Lookup(doc)
	if !ok || v == nil {
		return time.Time{}, fmt.Sprintf("no time at %s", p)
	}
	raw, ok := scalarText(v)
	if _, isBool := v.(bool); !ok || isBool {
		return time.Time{}, fmt.Sprintf("time at %s is %s", p, describe(v))
	}
	bad := func() (time.Time, string) {
		return time.Time{}, fmt.Sprintf("time at %s is not %s: %s", p, format, truncate.Runes(raw, 60))
	}
	switch format {
	case TimeRFC3339:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, raw); err != nil {
			return bad()
		}
	case TimeUnix:
		secs, err := strconv.ParseFloat(raw, 64)
		if err != nil || !(secs > 0) || secs > float64(maxEventTime.Unix()) {
			return bad()
		}
		whole := math.Floor(secs)
		t = time.Unix(int64(whole), int64((secs-whole)*1e9))
	case TimeUnixMS:
		ms, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || ms <= 0 || ms > maxEventTime.UnixMilli() {
			return bad()
		}
		t = time.UnixMilli(ms)
	default:
		return bad()
	}
	if t.Unix() <= 0 || t.After(maxEventTime) {
		return bad()
	}
	return t.UTC(), ""
}

// unreadable is a verified JSON body that is not an event this configuration can read.
func (s *Source) unreadable(ev carrier.Event, body []byte, problem string) carrier.Event {
	ev.EventKey = carrier.BodyKey(body)
	ev.Problem = truncate.Runes(problem, 500)
	ev.Details = json.RawMessage(`{}`)
	return ev
}

// webhook compiles the webhook section.
func (c *compiler) webhook(cfg WebhookConfig) *compiledWebhook {
	w := &compiledWebhook{}
	sig := cfg.Signature
	scheme, ok := signatureSchemes[sig.Scheme]
	if !ok {
		c.fail("webhook.signature.scheme", "%q is not one of %s", sig.Scheme, strings.Join(slices.Sorted(maps.Keys(signatureSchemes)), ", "))
	}
	w.newHash, w.size, w.encoding = scheme.newHash, scheme.size, scheme.encoding
	w.header = sig.Header
	if !validHeaderName(sig.Header) {
		c.fail("webhook.signature.header", "required: the header name that carries the signature")
	}
	w.prefix = sig.Prefix
	if strings.ContainsAny(sig.Prefix, "\r\n\x00") || strings.TrimSpace(sig.Prefix) != sig.Prefix {
		c.fail("webhook.signature.prefix", "must not contain spaces at its ends or line breaks")
	}
	w.keys = c.webhookKeys(sig)

	w.eventID = c.path("webhook.event_id", cfg.EventID)
	w.taskID = c.requiredPath("webhook.task_id", cfg.TaskID)
	w.externalID = c.path("webhook.external_id", cfg.ExternalID)
	w.status = c.requiredPath("webhook.status", cfg.Status)
	w.time = c.requiredPath("webhook.time", cfg.Time)
	w.reason = c.path("webhook.reason", cfg.Reason)
	w.tracking = c.path("webhook.tracking_url", cfg.TrackingURL)
	w.timeFormat = cmp.Or(cfg.TimeFormat, TimeRFC3339)
	switch w.timeFormat {
	case TimeRFC3339, TimeUnix, TimeUnixMS:
	default:
		c.fail("webhook.time_format", "%q is not one of %s, %s, %s", cfg.TimeFormat, TimeRFC3339, TimeUnix, TimeUnixMS)
	}
	w.details = make(map[string]Path, len(cfg.Details))
	for name, p := range cfg.Details {
		if strings.TrimSpace(name) == "" {
			c.fail("webhook.details", "a detail needs a name")
			continue
		}
		w.details[name] = c.requiredPath("webhook.details."+name, p)
	}
	return w
}

// webhookKeys reads the signing secrets: one, or two while rotating.
func (c *compiler) webhookKeys(sig SignatureConfig) [][]byte {
	const field = "webhook.signature.secret_env"
	value := c.secret(field, sig.SecretEnv)
	if value == "" {
		return nil
	}
	encoding := cmp.Or(sig.SecretEncoding, "raw")
	var keys [][]byte
	secrets := strings.Split(value, ",")
	if len(secrets) > 2 {
		c.fail(field, "%s holds more than two secrets", sig.SecretEnv)
	}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		var key []byte
		var err error
		switch encoding {
		case "raw":
			key = []byte(s)
		case "hex":
			key, err = hex.DecodeString(s)
		case "base64":
			key, err = base64.StdEncoding.DecodeString(s)
		default:
			c.fail("webhook.signature.secret_encoding", "%q is not one of raw, hex, base64", sig.SecretEncoding)
			return nil
		}
		if err != nil || len(key) == 0 {
			// Never echo the secret.
			c.fail(field, "a secret in %s is not %s (secret_encoding) or is empty", sig.SecretEnv, encoding)
			return nil
		}
		keys = append(keys, key)
	}
	return keys
}

// vocabulary checks each word on its own (so the problem names it), then builds the whole.
func (c *compiler) vocabulary(words map[string]string) carrier.Vocabulary {
	if len(words) == 0 {
		c.fail("vocabulary", "required: each of the carrier's status words and what it means "+
			"(a Waybill status, %q or %q)", carrier.WordRecord, carrier.WordIgnore)
		return nil
	}
	ok := true
	for _, word := range slices.Sorted(maps.Keys(words)) {
		if _, err := carrier.ParseVocabulary(map[string]string{word: words[word]}); err != nil {
			c.fail("vocabulary."+word, "%s", strings.TrimPrefix(err.Error(), "vocabulary: "))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	v, err := carrier.ParseVocabulary(words)
	if err != nil {
		c.fail("vocabulary", "%v", err)
	}
	return v
}
