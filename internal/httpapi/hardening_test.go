package httpapi_test

// Issue 10 ("Hardening"): bad input is a 4xx, intake answers within a deadline, River UI resists
// CSRF and framing, the monolith's role inserts the contract's columns only, /readyz names
// nothing about the database. Real Postgres, real HTTP, a second login role.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/httpapi"
	"github.com/waybill/waybill/internal/metrics"
	"github.com/waybill/waybill/internal/orders"
)

const hardeningPayload = `{"recipient":{"name":"Ada Lovelace","phone":"+14155550100"},"address":{"line1":"1 Market St","city":"San Francisco","country":"US"}`

func orderBody(externalID, carrier, payloadExtra string) string {
	return `{"external_id":"` + externalID + `","carrier":"` + carrier + `","payload":` + hardeningPayload + payloadExtra + `}}`
}

// NUL characters, invalid UTF-8, odd media types and huge numbers are the client's mistakes
// (4xx), or exact replays (200), never a 500.
func TestIntakeBadInputIsNever500(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bearer := "Bearer " + token
	json := []string{"Content-Type", "application/json"}

	tests := []struct {
		name string
		body string
		hdr  []string
		want int
	}{
		{name: "NUL escape in external_id", body: orderBody(`SO-NUL\u0000`, "onfleet", ""), want: 400},
		{name: "NUL escape in carrier", body: orderBody("SO-NUL-2", `onfleet\u0000`, ""), want: 400},
		{name: "NUL escape in the payload", body: orderBody("SO-NUL-3", "onfleet", `,"notes":"door\u0000code"`), want: 400},
		{name: "raw NUL byte", body: orderBody("SO-NUL-4", "onfleet", ",\"notes\":\"a\x00b\""), want: 400},
		{name: "invalid UTF-8 in the payload", body: orderBody("SO-UTF-1", "onfleet", ",\"notes\":\"caf\xe9\""), want: 400},
		{name: "invalid UTF-8 in external_id", body: orderBody("SO-UTF-\xff", "onfleet", ""), want: 400},
		{name: "media type in capitals", body: orderBody("SO-CT-1", "onfleet", ""), hdr: []string{"Content-Type", "Application/JSON"}, want: 201},
		{name: "media type with charset", body: orderBody("SO-CT-2", "onfleet", ""), hdr: []string{"Content-Type", "application/json; charset=utf-8"}, want: 201},
		{name: "media type that only starts like JSON", body: orderBody("SO-CT-3", "onfleet", ""), hdr: []string{"Content-Type", "application/jsonfoo"}, want: 415},
		{name: "malformed media type", body: orderBody("SO-CT-4", "onfleet", ""), hdr: []string{"Content-Type", "application/json; charset"}, want: 415},
	}
	for _, tt := range tests {
		status, body := b.do(t, "POST", "/v1/orders", bearer, tt.body, append(append([]string{}, json...), tt.hdr...)...)
		require.Equal(t, tt.want, status, "%s: %v", tt.name, body)
	}

	for _, path := range []string{"/v1/orders/%00", "/v1/orders/SO%00X", "/v1/orders/%FF", "/v1/orders/%C3%28", "/v1/orders/" + strings.Repeat("x", 201)} {
		status, body := b.do(t, "GET", path, bearer, "")
		require.Equal(t, http.StatusNotFound, status, "%s: %v", path, body)
	}

	// Idempotency compares payloads exactly, as jsonb: a replay with a number float64 cannot hold
	// is the same order; two integers that float64 confuses are two different payloads.
	huge := orderBody("SO-NUM-1", "onfleet", `,"notes":"n","x":1e400`)
	status, body := b.do(t, "POST", "/v1/orders", bearer, huge)
	require.Equal(t, http.StatusCreated, status, body)
	status, body = b.do(t, "POST", "/v1/orders", bearer, huge)
	require.Equal(t, http.StatusOK, status, body)
	status, body = b.do(t, "POST", "/v1/orders", bearer, strings.Replace(huge, `"notes":"n","x":1e400`, `"x":1E+400 ,"notes":"n"`, 1))
	require.Equal(t, http.StatusOK, status, "the same number, written differently: %v", body)

	status, body = b.do(t, "POST", "/v1/orders", bearer, orderBody("SO-NUM-2", "onfleet", `,"x":9007199254740993`))
	require.Equal(t, http.StatusCreated, status, body)
	status, body = b.do(t, "POST", "/v1/orders", bearer, orderBody("SO-NUM-2", "onfleet", `,"x":9007199254740992`))
	require.Equal(t, http.StatusConflict, status, body)
}

// hungPostgres accepts connections and never answers, as a Postgres stuck on I/O would.
func hungPostgres(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func intakeServer(t *testing.T, dbAddr string, timeout time.Duration) *httptest.Server {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://root@"+dbAddr+"/test?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{
		Orders:         orders.NewStore(pool),
		IntakeToken:    token,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:          func(context.Context) error { return nil },
		RequestTimeout: timeout,
	}))
	t.Cleanup(srv.Close)
	return srv
}

// With Postgres hung or gone, intake answers 503 with Retry-After within its deadline instead of
// holding the producer until it gives up.
func TestIntakeAnswersWithinDeadlineWhenPostgresIsHungOrDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := ln.Addr().String()
	require.NoError(t, ln.Close())

	const deadline = time.Second
	for name, addr := range map[string]string{"hung": hungPostgres(t), "down": down} {
		srv := intakeServer(t, addr, deadline)
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/v1/orders", validOrder},
			{"GET", "/v1/orders/SO-1001", ""},
		} {
			r, err := http.NewRequest(req.method, srv.URL+req.path, strings.NewReader(req.body))
			require.NoError(t, err)
			r.Header.Set("Authorization", "Bearer "+token)
			client := &http.Client{Timeout: 20 * time.Second} // the producer's patience
			start := time.Now()
			resp, err := client.Do(r)
			require.NoError(t, err, "%s %s %s", name, req.method, req.path)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
			elapsed := time.Since(start)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s %s", name, req.method)
			require.Equal(t, "5", resp.Header.Get("Retry-After"))
			require.Less(t, elapsed, deadline+3*time.Second, "%s %s answered after %s", name, req.method, elapsed)
		}
	}
}

// A browser holding cached Basic credentials must not be made to retry (or cancel, or delete)
// jobs by another site, nor to show River UI in another site's frame.
func TestRiverUIRefusesCrossOriginAndFraming(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(dbtest.NewRiver(t, pool, nil), nil),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Prefix:    "/riverui",
	})
	require.NoError(t, err)
	require.NoError(t, ui.Start(ctx))
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{
		Orders: orders.NewStore(pool), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:   func(context.Context) error { return nil },
		RiverUI: httpapi.BasicAuth("admin", "pw", ui),
	}))
	t.Cleanup(srv.Close)

	var jobID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, finalized_at)
		VALUES ('{}', 'noop', 1, 'default', 'discarded', now()) RETURNING id`).Scan(&jobID))
	state := func() string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT state::text FROM waybill.river_job WHERE id = $1`, jobID).Scan(&s))
		return s
	}
	retry := func(hdr ...string) int {
		req, err := http.NewRequest("POST", srv.URL+"/riverui/api/jobs/retry", strings.NewReader(`{"ids":["`+strconv.FormatInt(jobID, 10)+`"]}`))
		require.NoError(t, err)
		req.SetBasicAuth("admin", "pw") // what the browser has cached
		req.Header.Set("Content-Type", "text/plain")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}

	// A form or fetch on https://evil.example, as a current browser sends it, and as an older
	// one (Origin only).
	require.Equal(t, http.StatusForbidden, retry("Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"))
	require.Equal(t, http.StatusForbidden, retry("Origin", "https://evil.example"))
	require.Equal(t, http.StatusForbidden, retry("Sec-Fetch-Site", "same-site", "Origin", "https://sub.example"))
	require.Equal(t, "discarded", state(), "nothing was retried")

	// River UI itself (same origin) still works.
	require.Equal(t, http.StatusOK, retry("Sec-Fetch-Site", "same-origin", "Origin", srv.URL))
	require.Equal(t, "available", state())

	resp, err := http.Get(srv.URL + "/riverui/")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, "frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	req, err := http.NewRequest("GET", srv.URL+"/riverui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", "pw")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
}

func requirePermissionDenied(t *testing.T, err error, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%s: want permission denied, got %v", what, err)
	require.Equal(t, "42501", pgErr.Code, "%s: %s", what, pgErr.Message)
}

// The monolith's login inserts the contract's columns and nothing else: it cannot take ids
// from the identity sequence's future (which broke the next intakes with 500) nor backdate.
func TestMonolithLoginInsertsContractColumnsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, shopURL := dbtest.NewLogin(t, b.pool.Config().ConnString(), "waybill_monolith")
	shop := dbtest.Connect(t, shopURL)
	p := hardeningPayload + "}"

	// The contract works, RETURNING included.
	var id int64
	var status string
	require.NoError(t, shop.QueryRow(ctx, `INSERT INTO waybill.orders (external_id, carrier, kind, payload) VALUES ('SO-R-1', 'onfleet', 'delivery', $1)
		ON CONFLICT (external_id) DO NOTHING RETURNING id, status`, p).Scan(&id, &status))
	require.Equal(t, "pending", status)

	_, err := shop.Exec(ctx, `INSERT INTO waybill.orders (id, external_id, carrier, payload) OVERRIDING SYSTEM VALUE
		VALUES ($1, 'SO-R-2', 'onfleet', $2)`, id+1, p)
	requirePermissionDenied(t, err, "OVERRIDING SYSTEM VALUE id")
	_, err = shop.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload, created_at) VALUES ('SO-R-3', 'onfleet', $1, '2001-01-01')`, p)
	requirePermissionDenied(t, err, "backdated created_at")
	_, err = shop.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload, updated_at) VALUES ('SO-R-4', 'onfleet', $1, '2001-01-01')`, p)
	requirePermissionDenied(t, err, "updated_at")

	// The next HTTP intakes are unharmed.
	for _, ext := range []string{"SO-R-5", "SO-R-6"} {
		status, body := b.do(t, "POST", "/v1/orders", "Bearer "+token, orderBody(ext, "onfleet", ""))
		require.Equal(t, http.StatusCreated, status, body)
	}
}

// /readyz through the real readiness check, Postgres unreachable: the reason, no user, host or
// database name.
func TestReadyzNamesNothingAboutTheDatabase(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	pool, err := pgxpool.New(context.Background(), "postgres://waybill_secret_user@"+addr+"/waybill_secret_db?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{
		Orders: orders.NewStore(pool), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(ctx context.Context) error { return metrics.Ready(ctx, pool, nil) },
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/readyz")
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.JSONEq(t, `{"status":"not ready","reason":"database unreachable"}`, string(raw))
	for _, secret := range []string{"waybill_secret_user", "waybill_secret_db", "127.0.0.1", addr} {
		require.NotContains(t, string(raw), secret)
	}
}
