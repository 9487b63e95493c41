package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/httpapi"
	"github.com/waybill/waybill/internal/orders"
)

const token = "s3cret-token"

const validOrder = `{"external_id":"SO-1001","carrier":"onfleet","payload":{
 "recipient":{"name":"Ada Lovelace","phone":"+14155550100"},
 "address":{"line1":"1 Market St","city":"San Francisco","country":"US"}}}`

type testBundle struct {
	pool   *pgxpool.Pool
	server *httptest.Server
	ready  error
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	b := &testBundle{pool: pool}
	b.server = httptest.NewServer(httpapi.NewHandler(httpapi.Deps{
		Orders:      orders.NewStore(pool),
		IntakeToken: token,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:       func(context.Context) error { return b.ready },
		RiverUI:     httpapi.BasicAuth("admin", "pw", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ui") })),
	}))
	t.Cleanup(b.server.Close)
	return b
}

func (b *testBundle) do(t *testing.T, method, path, auth, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, b.server.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bearer := "Bearer " + token

	status, body := b.do(t, "POST", "/v1/orders", bearer, validOrder)
	require.Equal(t, http.StatusCreated, status, body)
	require.Equal(t, "pending", body["status"])
	require.Equal(t, "delivery", body["kind"])
	require.Equal(t, "SO-1001", body["external_id"])

	// The same request again: the same order, 200, no second job.
	status, again := b.do(t, "POST", "/v1/orders", bearer, validOrder)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, body["created_at"], again["created_at"])
	var jobs int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order'`).Scan(&jobs))
	require.Equal(t, 1, jobs)

	// Same external_id, other content: 409.
	status, body = b.do(t, "POST", "/v1/orders", bearer, strings.Replace(validOrder, `"carrier":"onfleet"`, `"carrier":"onfleet","kind":"pickup"`, 1))
	require.Equal(t, http.StatusConflict, status, body)

	status, body = b.do(t, "GET", "/v1/orders/SO-1001", bearer, "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "pending", body["status"])
	require.NotContains(t, body, "payload")

	status, _ = b.do(t, "GET", "/v1/orders/NOPE", bearer, "")
	require.Equal(t, http.StatusNotFound, status)
}

func TestCreateOrderBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bearer := "Bearer " + token

	tests := []struct {
		name, auth, body string
		hdr              []string
		want             int
		wantFields       []string
	}{
		{name: "no token", body: validOrder, want: 401},
		{name: "wrong token", auth: "Bearer nope", body: validOrder, want: 401},
		{name: "basic instead of bearer", auth: "Basic YTpi", body: validOrder, want: 401},
		{name: "malformed JSON", auth: bearer, body: `{"external_id":`, want: 400},
		{name: "two objects", auth: bearer, body: validOrder + validOrder, want: 400},
		{name: "unknown field", auth: bearer, body: `{"external_id":"A","carrier":"onfleet","payload":{},"colour":"red"}`, want: 400},
		{name: "wrong content type", auth: bearer, body: validOrder, hdr: []string{"Content-Type", "text/plain"}, want: 415},
		{name: "too large", auth: bearer, body: `{"external_id":"` + strings.Repeat("a", 2<<20) + `"}`, want: 413},
		{name: "missing top-level fields", auth: bearer, body: `{}`, want: 400, wantFields: []string{"external_id", "carrier", "payload"}},
		{name: "invalid payload and carrier", auth: bearer,
			body: `{"external_id":"B","carrier":"dhl","kind":"teleport","payload":{"recipient":{"name":"A"},"address":{"line1":"x","city":"y","country":"US"}}}`,
			want: 400, wantFields: []string{"carrier", "kind", "payload.recipient.phone"}},
		{name: "payload not an object", auth: bearer, body: `{"external_id":"C","carrier":"onfleet","payload":"hi"}`, want: 400, wantFields: []string{"payload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := b.do(t, "POST", "/v1/orders", tt.auth, tt.body, tt.hdr...)
			require.Equal(t, tt.want, status, body)
			require.NotEmpty(t, body["error"])
			var fields []string
			if fs, ok := body["fields"].([]any); ok {
				for _, f := range fs {
					fields = append(fields, f.(map[string]any)["field"].(string))
				}
			}
			for _, f := range tt.wantFields {
				require.Contains(t, fields, f)
			}
		})
	}
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM waybill.orders`).Scan(&n))
	require.Zero(t, n, "nothing bad is stored")
}

func TestHealthReadyAndAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)

	status, _ := b.do(t, "GET", "/healthz", "", "")
	require.Equal(t, 200, status)
	status, body := b.do(t, "GET", "/readyz", "", "")
	require.Equal(t, 200, status)
	require.Equal(t, "ready", body["status"])

	// An error without a public reason is not echoed at all.
	b.ready = errors.New("postgres: connection refused to user=waybill host=db.internal")
	status, body = b.do(t, "GET", "/readyz", "", "")
	require.Equal(t, 503, status)
	require.Equal(t, "not ready", body["reason"])

	status, _ = b.do(t, "GET", "/riverui/", "", "")
	require.Equal(t, 401, status)
	status, _ = b.do(t, "GET", "/riverui/", "Basic YWRtaW46d3Jvbmc=", "") // admin:wrong
	require.Equal(t, 401, status)
	status, _ = b.do(t, "GET", "/riverui/", "Basic YWRtaW46cHc=", "") // admin:pw
	require.Equal(t, 200, status)
}
