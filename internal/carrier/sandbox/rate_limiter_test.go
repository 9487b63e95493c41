package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is an injectable clock for the rate limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestRateLimiterSlidingWindow(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newRateLimiter(clock.now)

	// A burst of 3 at the end of one second...
	for i := range 3 {
		ok, remaining := l.take(4)
		require.True(t, ok)
		require.Equal(t, 3-i, remaining)
	}
	// ...and more just after a fixed window would have reset: still the same sliding second.
	clock.advance(900 * time.Millisecond)
	ok, remaining := l.take(4)
	require.True(t, ok)
	require.Zero(t, remaining)
	ok, _ = l.take(4)
	require.False(t, ok, "a fifth request within one second is refused")
	require.Zero(t, l.peek(4))

	// One second after the burst, its three requests have left the window.
	clock.advance(100 * time.Millisecond)
	require.Equal(t, 3, l.peek(4))
	ok, remaining = l.take(4)
	require.True(t, ok)
	require.Equal(t, 2, remaining)

	// Lowering the limit keeps the most recent requests; 0 lifts it.
	ok, _ = l.take(2)
	require.False(t, ok)
	for range 100 {
		ok, _ = l.take(0)
		require.True(t, ok)
	}
}

// TestRateLimiterNeverOverLimit: however requests arrive, no one-second window holds more than
// the limit accepted.
func TestRateLimiterNeverOverLimit(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newRateLimiter(clock.now)
	d := newDice(11)
	var accepted []time.Time
	for range 5000 {
		clock.advance(time.Duration(d.uint64()%40) * time.Millisecond)
		if ok, _ := l.take(20); ok {
			accepted = append(accepted, clock.now())
		}
	}
	for i := 20; i < len(accepted); i++ {
		require.GreaterOrEqual(t, accepted[i].Sub(accepted[i-20]), time.Second, "21 requests within one second at %d", i)
	}
	require.Greater(t, len(accepted), 1800, "about 97 s at 20 a second: the limit lets them through")
}

// do sends one request with the API key as Basic auth ("key:"), or with no auth for key "".
func (b *testBundle) do(t *testing.T, method, path, key, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, raw
}

// onfleetError decodes Onfleet's error envelope.
type onfleetError struct {
	Code    string `json:"code"`
	Message struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
		Cause   string `json:"cause"`
		Request string `json:"request"`
	} `json:"message"`
}

func decodeError(t *testing.T, raw []byte) onfleetError {
	t.Helper()
	var e onfleetError
	require.NoError(t, json.Unmarshal(raw, &e), string(raw))
	require.NotEmpty(t, e.Code, string(raw))
	require.NotEmpty(t, e.Message.Request, string(raw))
	return e
}

func TestRateLimitPerOrganisation(t *testing.T) {
	t.Parallel()
	// No configured key: any key is accepted, and two keys of one organisation share the limit.
	sb := New(Options{RateLimit: 5}, nil)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	b := &testBundle{sandbox: sb, url: srv.URL}

	var statuses []int
	for i := range 8 {
		key := "key-a"
		if i%2 == 1 {
			key = "key-b"
		}
		status, header, raw := b.do(t, http.MethodGet, "/api/v2/auth/test", key, "")
		statuses = append(statuses, status)
		require.Equal(t, "5", header.Get("X-RateLimit-Limit"))
		if status == http.StatusTooManyRequests {
			require.Equal(t, "0", header.Get("X-RateLimit-Remaining"))
			e := decodeError(t, raw)
			require.Equal(t, "TooManyRequests", e.Code)
			require.Equal(t, 2300, e.Message.Error)
		} else {
			require.Equal(t, []string{"4", "3", "2", "1", "0"}[i], header.Get("X-RateLimit-Remaining"))
		}
	}
	require.Equal(t, []int{200, 200, 200, 200, 200, 429, 429, 429}, statuses)

	// Refused requests do not count: a second after the burst the full limit is back.
	time.Sleep(1100 * time.Millisecond)
	status, header, _ := b.do(t, http.MethodPost, "/tasks/metadata", "key-a", `[]`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "4", header.Get("X-RateLimit-Remaining"))

	// A request without a key is answered 401 with the headers, and takes nothing.
	status, header, _ = b.do(t, http.MethodGet, "/auth/test", "", "")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "4", header.Get("X-RateLimit-Remaining"))

	// Lifted at runtime: no limit, no headers.
	b.setFaults(t, `{"rate-limit": 0}`)
	for range 20 {
		status, header, _ = b.do(t, http.MethodGet, "/auth/test", "key-a", "")
		require.Equal(t, http.StatusOK, status)
		require.Empty(t, header.Get("X-RateLimit-Limit"))
	}
	status, _, _ = b.do(t, http.MethodPost, "/sandbox/faults", "", `{"rate-limit": -1}`)
	require.Equal(t, http.StatusBadRequest, status)

	st := b.stats(t)
	require.EqualValues(t, 3, st.Requests.RateLimited)
	require.EqualValues(t, 28, st.RequestsByRoute["GET /auth/test"], "429s included, the 401 not")
	require.EqualValues(t, 1, st.RequestsByRoute["POST /tasks/metadata"])
	require.EqualValues(t, 1, st.Requests.Unauthorized)
}

func TestAuthWithoutColon(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	for _, tc := range []struct {
		header string
		status int
	}{
		{"Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey)), 200},      // Onfleet's SDKs
		{"Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":")), 200},  // curl -u key:
		{"basic " + base64.RawStdEncoding.EncodeToString([]byte(apiKey)), 200},   // unpadded, any case
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("wrong-key")), 401}, // wrong key
		{"Basic !!!", 401},
		{"Bearer " + apiKey, 401},
	} {
		req, err := http.NewRequest(http.MethodGet, b.url+"/auth/test", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", tc.header)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, tc.status, resp.StatusCode, tc.header)
	}
}

func TestUnknownRoutesAnswerOnfleetErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)

	status, header, raw := b.do(t, http.MethodGet, "/api/v2/workers", apiKey, "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, header.Get("Content-Type"), "application/json")
	e := decodeError(t, raw)
	require.Equal(t, "ResourceNotFound", e.Code)
	require.Contains(t, e.Message.Cause, "GET /workers")

	status, header, raw = b.do(t, http.MethodDelete, "/api/v2/tasks/abc", apiKey, "")
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Contains(t, header.Get("Allow"), "GET")
	e = decodeError(t, raw)
	require.Equal(t, "MethodNotAllowed", e.Code)

	status, _, raw = b.do(t, http.MethodPatch, "/tasks", apiKey, "")
	require.Equal(t, http.StatusMethodNotAllowed, status)
	decodeError(t, raw)

	// Unknown paths need a key like any other.
	status, _, raw = b.do(t, http.MethodGet, "/nothing/here", "", "")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "InvalidCredentials", decodeError(t, raw).Code)

	require.EqualValues(t, 3, b.stats(t).RequestsByRoute[routeUnmatched])
}
