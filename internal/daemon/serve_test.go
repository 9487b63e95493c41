package daemon

// Issue 10 on the whole service: /metrics off the public listener with WAYBILL_METRICS_ADDR,
// River UI's framing headers, and a Postgres outage logging one line per failure per interval.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/logtest"
)

// pgProxy forwards TCP to Postgres until cut, and again once restored.
type pgProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	t.Helper()
	p := &pgProxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *pgProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); _ = c.Close() })
		}
	})
}

// cut closes the listener and every connection: Postgres is gone.
func (p *pgProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *pgProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.serve(ln)
}

func TestServeHardening(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.addr

	cfg, err := config.FromEnv(func(k string) string {
		return map[string]string{
			"DATABASE_URL":             u.String(),
			"ONFLEET_API_KEY":          "test",
			"ONFLEET_BASE_URL":         "http://127.0.0.1:1",
			"WAYBILL_METRICS_ADDR":     "127.0.0.1:0",
			"WAYBILL_ADMIN_USER":       "admin",
			"WAYBILL_ADMIN_PASSWORD":   "pw",
			"WAYBILL_DISPATCH_WORKERS": "5",
			"WAYBILL_DB_MAX_CONNS":     "10",
		}[k]
	})
	require.NoError(t, err)
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, logger, Options{Listener: ln, MetricsListener: metricsLn, ShutdownTimeout: 5 * time.Second,
			OnReady: func(base string) { ready <- base }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("Serve did not stop")
		}
	})
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not start")
	}
	get := func(url string, user ...string) *http.Response {
		req, err := http.NewRequest("GET", url, nil)
		require.NoError(t, err)
		if len(user) == 2 {
			req.SetBasicAuth(user[0], user[1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		return resp
	}

	// /metrics lives on WAYBILL_METRICS_ADDR only.
	require.Equal(t, http.StatusNotFound, get(base+"/metrics").StatusCode)
	require.Equal(t, http.StatusOK, get("http://"+metricsLn.Addr().String()+"/metrics").StatusCode)

	// River UI is not to be framed.
	resp := get(base+"/riverui/", "admin", "pw")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	require.Equal(t, "frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"))

	// A 4-second outage, with /readyz asked every 100 ms as a load balancer would: one line
	// per failure (message) per interval, not one per poll, probe and loop.
	require.Equal(t, http.StatusOK, get(base+"/readyz").StatusCode)
	before := len(logs.String())
	proxy.cut()
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); {
		get(base + "/readyz")
		time.Sleep(100 * time.Millisecond)
	}
	outage := logs.String()[before:]
	proxy.restore(t)

	perMessage := map[string]int{}
	lines := 0
	for line := range strings.Lines(outage) {
		var rec struct{ Level, Msg string }
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		if rec.Level == "WARN" || rec.Level == "ERROR" {
			lines++
			perMessage[rec.Level+" "+rec.Msg]++
		}
	}
	t.Logf("outage: %d warning and error lines: %v", lines, perMessage)
	require.NotZero(t, lines, "the outage is logged")
	for msg, n := range perMessage {
		require.Equal(t, 1, n, "%q logged %d times in one interval", msg, n)
	}

	// And the service comes back by itself.
	require.Eventually(t, func() bool { return get(base+"/readyz").StatusCode == http.StatusOK }, 30*time.Second, 200*time.Millisecond)
}
