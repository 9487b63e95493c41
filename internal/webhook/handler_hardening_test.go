package webhook

// Issue 10 ("Hardening"): no unauthenticated request reserves memory it has not sent, a signed
// event with a huge key is stored rather than refused with 500 forever, ?check= echoes only for
// configured carriers. Real HTTP over TCP, real Postgres.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier/onfleet"
)

// rssBytes is the process's resident set size (Linux).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// headerOnly sends a webhook's headers, promising a 1 MiB body that never comes.
func headerOnly(t *testing.T, addr string, signed bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	// Closed before the server (cleanups run last first), whose Close waits for its handlers.
	t.Cleanup(func() { _ = c.Close() })
	sig := ""
	if signed {
		sig = onfleet.SignatureHeader + ": " + strings.Repeat("ab", 64) + "\r\n"
	}
	_, err = fmt.Fprintf(c, "POST /webhooks/onfleet HTTP/1.1\r\nHost: waybill\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", sig, MaxBodyBytes)
	require.NoError(t, err)
	return c
}

func readStatus(t *testing.T, c net.Conn, within time.Duration) (int, http.Header) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(within)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err, "no answer within %s", within)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// Slow header-only requests, the cheapest attack there is, must not make the process reserve
// what they promise. Bound: 500 of them, each promising 1 MiB, grow the heap and the RSS by less
// than 64 MiB (before the fix: ~500 MiB of heap, one Content-Length each). Not parallel, so the
// process's memory is this test's.
func TestHeaderOnlyRequestsReserveNoMemory(t *testing.T) {
	b := setup(t, setupOpts{})
	srv := httptest.NewServer(b.mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// Unsigned: refused from the headers alone, without waiting for a body.
	for range 5 {
		c := headerOnly(t, addr, false)
		code, _ := readStatus(t, c, 5*time.Second)
		require.Equal(t, http.StatusUnauthorized, code)
		require.NoError(t, c.Close())
	}

	const n = 500
	const bound = 64 << 20
	heap0, rss0 := heapInuse(), rssBytes(t)
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = headerOnly(t, addr, true)
	}
	// Past the cap on bodies read at once, requests are answered 503 with Retry-After at once;
	// the others wait for their bodies.
	busy := n - DefaultMaxBodyReads
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && b.hooks.get("onfleet", ResultBusy) < busy; {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // every request has reached its handler
	heapGrowth, rssGrowth := heapInuse()-heap0, rssBytes(t)-rss0
	t.Logf("%d header-only requests: heap +%d KiB, RSS +%d KiB", n, heapGrowth>>10, rssGrowth>>10)
	require.Less(t, heapGrowth, int64(bound))
	require.Less(t, rssGrowth, int64(bound))
	require.Equal(t, busy, b.hooks.get("onfleet", ResultBusy))

	var got503 int
	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue // still waiting for its body
		}
		_ = resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
		got503++
	}
	require.Equal(t, busy, got503)

	// The slow senders give up; their slots are free again for the carrier.
	for _, c := range conns {
		_ = c.Close()
	}
	body := onfleetEvent(t, "task_created", "TaskMEMMEMMEMMEMMEMMEMMEM", "SO-MEM", 0, nil)
	require.Eventually(t, func() bool { return b.post(t, "onfleet", body, "").Code == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
}

// A signed event whose key is far longer than Postgres's unique index can hold (a 12 KB task
// id) is stored under the key's hash: 200, and its redelivery is recognised. Before, every
// delivery was a 500, and the carrier retried it until it gave up on the endpoint.
func TestHugeEventKeyIsStoredHashed(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	random := make([]byte, 6000)
	_, _ = rand.Read(random)
	task := hex.EncodeToString(random) // 12,000 incompressible characters
	body := onfleetEvent(t, "task_created", task, "SO-HUGE", 0, nil)

	rec := b.post(t, "onfleet", body, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = b.post(t, "onfleet", body, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, 1, b.hooks.get("onfleet", ResultAccepted))
	require.Equal(t, 1, b.hooks.get("onfleet", ResultDuplicate))

	var key string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT event_key FROM waybill.webhook_events`).Scan(&key))
	require.True(t, strings.HasPrefix(key, "sha256-key:"), key)
	require.LessOrEqual(t, len(key), maxEventKey)

	// A key of ordinary length is stored as the carrier gave it.
	require.Equal(t, "abc:taskCreated:1", storedEventKey("abc:taskCreated:1"))
}

// Onfleet's URL check echoes its value for configured carriers only.
func TestCheckOnlyForConfiguredCarriers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /webhooks/{carrier}", b.handler.ServeCheck)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(raw)
	}
	code, body := get("/webhooks/onfleet?check=abc123")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "abc123", body)
	code, body = get("/webhooks/evil?check=%3Cscript%3Ealert(1)%3C/script%3E")
	require.Equal(t, http.StatusNotFound, code)
	require.NotContains(t, body, "script")
}
