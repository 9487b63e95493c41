package carrier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
)

// Source reads one carrier's webhooks: the seam between Waybill and a carrier on the way back,
// as Carrier is on the way out. Onfleet is one; a carrier declared in configuration is
// another. Implementations are safe for concurrent use.
type Source interface {
	// Name is the carrier's name: waybill.orders.carrier and the {carrier} of
	// POST /webhooks/{carrier}.
	Name() string
	// Verify checks that the raw body was signed by the carrier: ErrUnsigned or ErrBadSignature
	// (possibly wrapped) when not. It runs before anything else looks at the body. ErrUnsigned
	// must follow from the headers alone: intake calls Verify(nil, header) before reading a
	// body, to refuse unsigned requests without reserving anything for them.
	Verify(body []byte, header http.Header) error
	// Parse reads a verified body. Its only error is ErrNotJSON (possibly wrapped). JSON that is
	// not a readable event still parses: its Event carries a Problem and a key derived from the
	// body, so it is stored and quarantined rather than refused.
	Parse(body []byte) (Event, error)
	// Vocabulary maps the carrier's words (Event.CarrierStatus) to what they mean.
	Vocabulary() Vocabulary
}

var (
	// ErrUnsigned: the request carries no signature.
	ErrUnsigned = errors.New("webhook: no signature")
	// ErrBadSignature: the signature does not match the body under any configured secret.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrNotJSON: a verified body is not valid JSON.
	ErrNotJSON = errors.New("webhook: body is not valid JSON")
)

// BatchSource is a Source whose carrier announces by webhook that a batch job finished (Onfleet's
// trigger 19), with the job's results: dispatch settles the batch from it, whichever of the
// webhook and its own poll comes first.
type BatchSource interface {
	Source
	// BatchCompleted reads a finished batch job's id and results from a parsed event and its
	// body; ok is false when the event is not about a batch job.
	BatchCompleted(ev Event, body []byte) (jobID string, res BatchResult, ok bool)
}

// Sources are the configured carriers' webhook readers, by name.
type Sources map[string]Source

// NewSources indexes sources by name; two with one name are a configuration error.
func NewSources(sources ...Source) (Sources, error) {
	s := make(Sources, len(sources))
	for _, src := range sources {
		if _, dup := s[src.Name()]; dup {
			return nil, fmt.Errorf("webhook: two sources named %q", src.Name())
		}
		s[src.Name()] = src
	}
	return s, nil
}

// CheckHMAC reports whether mac is the HMAC (with newHash) of body under one of keys, comparing
// in constant time. Several keys let a secret be rotated without refusing events signed with
// the old one.
func CheckHMAC(newHash func() hash.Hash, keys [][]byte, body, mac []byte) error {
	if len(mac) == 0 {
		return ErrUnsigned
	}
	for _, key := range keys {
		h := hmac.New(newHash, key)
		h.Write(body)
		if hmac.Equal(h.Sum(nil), mac) {
			return nil
		}
	}
	return ErrBadSignature
}

// BodyKey is the event key of an event without a carrier identity: redeliveries of the same
// bytes are recognised.
func BodyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
