package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
)

// Callback headers; see CallbackArgs for the contract.
const (
	HeaderTimestamp = "X-Waybill-Timestamp"
	HeaderSignature = "X-Waybill-Signature"
	HeaderDelivery  = "X-Waybill-Delivery"
)

// DefaultCallbackTolerance is how old (or how far in the future) a callback's timestamp may be
// when VerifyCallback is given no tolerance. Retries are signed afresh, so only clock skew and
// transit count against it.
const DefaultCallbackTolerance = 5 * time.Minute

// Errors from VerifyCallback.
var (
	ErrCallbackUnsigned  = errors.New("callback: missing or malformed timestamp or signature header")
	ErrCallbackSignature = errors.New("callback: signature does not match")
	ErrCallbackStale     = errors.New("callback: timestamp outside the tolerance")
)

type callbackWorker struct {
	river.WorkerDefaults[CallbackArgs]
	n *Notifier
}

func (w *callbackWorker) Work(ctx context.Context, job *river.Job[CallbackArgs]) error {
	n := w.n
	body, err := json.Marshal(job.Args)
	if err != nil {
		return fmt.Errorf("callback: %w", err)
	}
	a := job.Args
	o := outcome{
		kind:       "callback",
		subject:    fmt.Sprintf("%s: %s -> %s", a.ExternalID, a.PreviousStatus, a.Status),
		body:       string(body),
		orderID:    a.OrderID,
		externalID: a.ExternalID,
	}
	if n.callbackURL == nil {
		o.skipReason = "WAYBILL_CALLBACK_URL is not set"
		return finish(ctx, n, job, o)
	}
	o.target = n.callbackURL.Host
	// Signed at each attempt, so a retry an hour later is not stale.
	ts := n.now().Unix()
	header := http.Header{}
	header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	header.Set(HeaderSignature, SignCallback(n.callbackKey, ts, body))
	header.Set(HeaderDelivery, strconv.FormatInt(job.ID, 10))
	if err := n.post(ctx, n.callbackURL, header, body); err != nil {
		return fmt.Errorf("callback: %w", err)
	}
	return finish(ctx, n, job, o)
}

// SignCallback returns the X-Waybill-Signature value for body sent at ts (unix seconds):
// "v1=" + lowercase hex of HMAC-SHA256 keyed with secret over ts + "." + body.
func SignCallback(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyCallback is the monolith's side of SignCallback, as a reference: it checks header's
// X-Waybill-Signature against body (the raw bytes read, before any JSON decoding) in constant
// time, then that X-Waybill-Timestamp is within tolerance of now (DefaultCallbackTolerance when
// tolerance is 0), so a captured request cannot be replayed later. The signature header may list
// several comma-separated values; one match is enough.
func VerifyCallback(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	if secret == "" {
		return errors.New("callback: no secret to verify with")
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(header.Get(HeaderTimestamp)), 10, 64)
	if err != nil || header.Get(HeaderSignature) == "" {
		return ErrCallbackUnsigned
	}
	want := []byte(SignCallback(secret, ts, body))
	matched := false
	for _, got := range strings.Split(header.Get(HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), want) {
			matched = true
		}
	}
	if !matched {
		return ErrCallbackSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultCallbackTolerance
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: sent %s, now %s", ErrCallbackStale, time.Unix(ts, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
