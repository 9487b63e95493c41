package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const callbackSecret = "whsec-test-0123456789"

type receivedCallback struct {
	header http.Header
	body   []byte
}

type callbackServer struct {
	*httptest.Server
	mu       sync.Mutex
	got      []receivedCallback
	statuses []int // answered in turn; 204 once they run out
}

func startCallback(t *testing.T, statuses ...int) *callbackServer {
	t.Helper()
	s := &callbackServer{statuses: statuses}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, receivedCallback{header: r.Header.Clone(), body: body})
		status := http.StatusNoContent
		if len(s.statuses) > 0 {
			status, s.statuses = s.statuses[0], s.statuses[1:]
		}
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *callbackServer) received() []receivedCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedCallback(nil), s.got...)
}

// independentSignature is the monolith's HMAC, written from the contract rather than from
// SignCallback.
func independentSignature(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

var statusChange = CallbackArgs{
	OrderID:        42,
	ExternalID:     "SO-1001",
	Carrier:        "onfleet",
	Status:         "delivered",
	PreviousStatus: "in_transit",
	CarrierStatus:  "taskCompleted",
	TrackingURL:    "https://onf.lt/abc123",
	OccurredAt:     time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC),
}

func TestCallbackSignedPost(t *testing.T) {
	t.Parallel()
	cb := startCallback(t)
	b := setup(t, Config{CallbackURL: cb.URL + "/waybill/status", CallbackSecret: callbackSecret}, testOpts{})

	jobID := b.insert(t, statusChange)
	requireCompleted(t, b.await(t, jobID))

	got := cb.received()
	require.Len(t, got, 1)
	h, body := got[0].header, got[0].body
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.Equal(t, strconv.FormatInt(testNow.Unix(), 10), h.Get(HeaderTimestamp))
	require.Equal(t, independentSignature(callbackSecret, h.Get(HeaderTimestamp), body), h.Get(HeaderSignature))
	require.Equal(t, strconv.FormatInt(jobID, 10), h.Get(HeaderDelivery))
	require.NoError(t, VerifyCallback(callbackSecret, h, body, 0, testNow.Add(time.Minute)))

	// The field names are the monolith's contract.
	require.JSONEq(t, `{
	  "order_id": 42, "external_id": "SO-1001", "carrier": "onfleet",
	  "status": "delivered", "previous_status": "in_transit", "carrier_status": "taskCompleted",
	  "tracking_url": "https://onf.lt/abc123", "occurred_at": "2025-03-04T05:00:00Z"
	}`, string(body))

	rows := b.notifications(t)
	require.Len(t, rows, 1)
	require.Equal(t, "callback", rows[0].Kind)
	require.Equal(t, "sent", rows[0].Outcome)
	require.Equal(t, "SO-1001: in_transit -> delivered", rows[0].Subject)
	require.Equal(t, string(body), rows[0].Body)
	require.Equal(t, int64(42), rows[0].OrderID.Int64)
}

// A 5xx fails the job; River's retry delivers it, with the same delivery id, recorded once.
func TestCallbackNon2xxIsRetried(t *testing.T) {
	t.Parallel()
	cb := startCallback(t, http.StatusServiceUnavailable)
	b := setup(t, Config{CallbackURL: cb.URL, CallbackSecret: callbackSecret}, testOpts{retryNow: true})

	jobID := b.insert(t, statusChange)
	require.Contains(t, requireFailed(t, b.await(t, jobID)), "HTTP 503")
	requireCompleted(t, b.await(t, jobID))

	got := cb.received()
	require.Len(t, got, 2)
	require.Equal(t, got[0].header.Get(HeaderDelivery), got[1].header.Get(HeaderDelivery))
	require.Equal(t, got[0].body, got[1].body)
	require.Len(t, b.notifications(t), 1)
}

func TestSignCallbackVector(t *testing.T) {
	t.Parallel()
	// printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	require.Equal(t, "v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686",
		SignCallback("secret", 1700000000, []byte(`{"a":1}`)))
}

func TestVerifyCallback(t *testing.T) {
	t.Parallel()
	body, err := json.Marshal(statusChange)
	require.NoError(t, err)
	ts := testNow.Unix()
	signed := func(sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	good := SignCallback(callbackSecret, ts, body)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] ^= 1

	tests := []struct {
		name    string
		secret  string
		header  http.Header
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"valid", callbackSecret, signed(good), body, testNow, nil},
		{"valid within tolerance", callbackSecret, signed(good), body, testNow.Add(4 * time.Minute), nil},
		{"rotation: one of several signatures", callbackSecret, signed("v1=00ff, " + good), body, testNow, nil},
		{"tampered body", callbackSecret, signed(good), tampered, testNow, ErrCallbackSignature},
		{"wrong secret", "another-secret", signed(good), body, testNow, ErrCallbackSignature},
		{"signature for another timestamp", callbackSecret, signed(SignCallback(callbackSecret, ts-1, body)), body, testNow, ErrCallbackSignature},
		{"stale", callbackSecret, signed(good), body, testNow.Add(6 * time.Minute), ErrCallbackStale},
		{"from the future", callbackSecret, signed(good), body, testNow.Add(-6 * time.Minute), ErrCallbackStale},
		{"no signature", callbackSecret, signed(""), body, testNow, ErrCallbackUnsigned},
		{"no timestamp", callbackSecret, http.Header{HeaderSignature: {good}}, body, testNow, ErrCallbackUnsigned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyCallback(tt.secret, tt.header, tt.body, 5*time.Minute, tt.now)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
	require.Error(t, VerifyCallback("", signed(good), body, 0, testNow), "an empty secret verifies nothing")
}
