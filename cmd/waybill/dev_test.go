package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/devenv"
	"github.com/waybill/waybill/internal/logtest"
)

// devStack is a running `waybill dev`, its stdout (the banner) and stderr (the logs) apart.
type devStack struct {
	cmd            *exec.Cmd
	stdout, stderr logtest.Buffer
	done           chan struct{}
	err            error
}

// startDev runs `waybill dev` in dir against dbURL on free ports, stopped at test end.
func startDev(t *testing.T, dir, dbURL string, extraEnv ...string) *devStack {
	t.Helper()
	d := &devStack{done: make(chan struct{})}
	d.cmd = exec.Command(waybillBin, "dev", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0")
	d.cmd.Dir = dir
	d.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL}, extraEnv...)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	require.NoError(t, d.cmd.Start())
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.done
		}
		if t.Failed() {
			t.Logf("--- waybill dev stdout ---\n%s\n--- stderr (last 4 KiB) ---\n%s", d.stdout.String(), tail(d.stderr.String(), 4096))
		}
	})
	return d
}

// banner is what the person running `make run` copies from the banner.
type banner struct {
	password, token, externalID, insert string
}

var (
	passwordRE = regexp.MustCompile(`River UI\s+\S+\s+user admin\s+password (\S+)`)
	tokenRE    = regexp.MustCompile(`Bearer (\S+)'`)
	insertRE   = regexp.MustCompile(`(?s)INSERT INTO waybill\.orders \(external_id, carrier, payload\)\nVALUES \('([^']+)'.*?\);`)
)

func (d *devStack) waitBanner(t *testing.T, timeout time.Duration) banner {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.stdout.String(), "Ctrl-C stops everything.") {
		select {
		case <-d.done:
			t.Fatalf("waybill dev exited before its banner: %v", d.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within %s", timeout)
		}
	}
	out := d.stdout.String()
	var b banner
	if m := passwordRE.FindStringSubmatch(out); m != nil {
		b.password = m[1]
	}
	if m := tokenRE.FindStringSubmatch(out); m != nil {
		b.token = m[1]
	}
	if m := insertRE.FindStringSubmatch(out); m != nil {
		b.externalID, b.insert = m[1], m[0]
	}
	require.NotEmpty(t, b.password, "banner: River UI password")
	require.NotEmpty(t, b.token, "banner: intake token")
	require.NotEmpty(t, b.insert, "banner: INSERT")
	return b
}

func (d *devStack) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.done:
		require.NoError(t, d.err, "waybill dev exits 0 on SIGTERM")
	case <-time.After(60 * time.Second):
		t.Fatal("waybill dev did not stop within 60s")
	}
}

func psql(t *testing.T, dbURL, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err, sql)
}

func queryInt(t *testing.T, dbURL, sql string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// The first hour, with the real binary, as issue 15 walked it: `make run`; paste the banner's
// INSERT; `make demo` beside the running stack (a second `waybill dev` is refused with that
// hint instead of dying on "address already in use"); `waybill dead` without DATABASE_URL;
// River UI 404s not logged and the logs quiet text; then `make run` again on the same database
// and checkout: same password and token, and an INSERT that works again.
func TestDevStackTwiceWithDemoBeside(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	dir := t.TempDir()

	first := startDev(t, dir, dbURL)
	b1 := first.waitBanner(t, 120*time.Second)
	stack, err := devenv.ReadStack(filepath.Join(dir, devenv.DefaultDir))
	require.NoError(t, err, "the running stack records itself")
	require.Equal(t, dbURL, stack.DatabaseURL)
	psql(t, dbURL, b1.insert)

	// Beside it: a second stack is refused, naming what to do instead, and starts nothing.
	second := runCLI(t, dir, []string{"DATABASE_URL=" + dbURL}, "dev")
	require.Equal(t, 1, second.code, second.stderr)
	require.Contains(t, second.stderr, "a dev stack already runs from this directory: "+stack.ServiceURL)
	require.Contains(t, second.stderr, "make demo N=20")
	require.NotContains(t, second.stderr, "address already in use")

	// `waybill demo` finds the running stack by itself (no DATABASE_URL) and its orders go out.
	demo := runCLI(t, dir, nil, "demo", "3")
	require.Equal(t, 0, demo.code, demo.stderr)
	require.Contains(t, demo.stdout, "Inserted 3 demo orders")
	eventually(t, 60*time.Second, "the banner's order and the demo orders dispatched", func() bool {
		return queryInt(t, dbURL, `SELECT count(*) FROM waybill.orders WHERE (external_id LIKE 'DEMO-%' OR external_id = $1) AND carrier_ref IS NOT NULL`, b1.externalID) == 4
	})
	// So does `waybill dead`.
	dead := runCLI(t, dir, nil, "dead", "list")
	require.Equal(t, 0, dead.code, dead.stderr)
	require.Contains(t, dead.stdout, "No open dead letters.")
	require.Contains(t, dead.stderr, "using the dev stack's database")

	// The intake token works; River UI answers a 404 without a log line about it.
	status, _ := httpGet(t, stack.ServiceURL+"/riverui/api/jobs/987654321", "admin", b1.password)
	require.Equal(t, http.StatusNotFound, status)
	req, err := http.NewRequest(http.MethodGet, stack.ServiceURL+"/v1/orders/"+b1.externalID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+b1.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The statuses the README lists for the intake.
	for _, c := range []struct {
		method, path, contentType, body string
		want                            int
	}{
		{http.MethodPost, "/v1/orders", "application/json", `{"external_id":`, http.StatusBadRequest},
		{http.MethodPost, "/v1/orders", "text/plain", `{}`, http.StatusUnsupportedMediaType},
		{http.MethodGet, "/v1/orders/no-such-order", "", "", http.StatusNotFound},
		{http.MethodDelete, "/v1/orders/" + b1.externalID, "", "", http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequest(c.method, stack.ServiceURL+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+b1.token)
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, c.want, resp.StatusCode, "%s %s: %s", c.method, c.path, body)
		if c.want == http.StatusBadRequest {
			var e struct {
				Fields []struct{ Field, Problem string }
			}
			require.NoError(t, json.Unmarshal(body, &e))
			require.NotEmpty(t, e.Fields, "malformed JSON: 400 with fields like every other 400: %s", body)
		}
	}

	// The ops assets query metrics this binary really exports (webhooks have come back by now).
	eventually(t, 60*time.Second, "a carrier webhook accepted", func() bool {
		return queryInt(t, dbURL, `SELECT count(*) FROM waybill.webhook_events`) > 0
	})
	_, metrics := httpGet(t, stack.ServiceURL+"/metrics", "", "")
	requireOpsAssetsQueryMetrics(t, metrics)

	first.stop(t)
	_, err = devenv.ReadStack(filepath.Join(dir, devenv.DefaultDir))
	require.ErrorIs(t, err, devenv.ErrNoStack, "a stopped stack removes its record")
	requireQuietTextLogs(t, first.stderr.String())

	// `make run` again: same checkout secrets, a new INSERT that works too.
	again := startDev(t, dir, dbURL)
	b2 := again.waitBanner(t, 120*time.Second)
	require.Equal(t, b1.password, b2.password, "River UI password kept across runs")
	require.Equal(t, b1.token, b2.token, "intake token kept across runs")
	require.NotEqual(t, b1.externalID, b2.externalID)
	psql(t, dbURL, b2.insert)
	again.stop(t)

	secrets, err := os.ReadFile(filepath.Join(dir, devenv.DefaultDir, devenv.SecretsFile))
	require.NoError(t, err)
	require.Contains(t, string(secrets), b1.password)
}

// requireQuietTextLogs: `waybill dev` logs text, without River's routine INFO lines (job counts
// every 5 s, client started) or River UI's API error responses.
func requireQuietTextLogs(t *testing.T, logs string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	require.NotEmpty(t, lines)
	for _, l := range lines {
		require.True(t, strings.HasPrefix(l, "time="), "not a text log line: %q", l)
	}
	require.Contains(t, logs, `msg="waybill serving"`)
	for _, noise := range []string{"Producer job counts", "River client started", "API error response"} {
		require.NotContains(t, logs, noise)
	}
}

// `waybill serve` logs JSON, one object a line, River quiet at the default level and heard at
// WAYBILL_LOG_LEVEL=debug.
func TestServeLogsJSONAndQuietRiver(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	serveFor := func(level string) string {
		addr := freeAddr(t)
		env := []string{"DATABASE_URL=" + dbURL, "ONFLEET_API_KEY=k", "WAYBILL_HTTP_ADDR=" + addr,
			"WAYBILL_ADMIN_USER=admin", "WAYBILL_ADMIN_PASSWORD=pw", "WAYBILL_LOG_LEVEL=" + level}
		p := startServe(t, "serve "+level, addr, env)
		status, _ := httpGet(t, "http://"+addr+"/riverui/api/jobs/987654321", "admin", "pw")
		require.Equal(t, http.StatusNotFound, status)
		time.Sleep(6 * time.Second) // River's producer reports job counts every 5 s
		require.NoError(t, p.Stop(30*time.Second))
		return p.Output()
	}

	logs := serveFor("info")
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &v), "not a JSON log line: %q", l)
	}
	require.Contains(t, logs, `"msg":"waybill serving"`)
	for _, noise := range []string{"Producer job counts", "River client started", "API error response"} {
		require.NotContains(t, logs, noise)
	}

	debug := serveFor("debug")
	require.Contains(t, debug, "River client started", "WAYBILL_LOG_LEVEL=debug lets River's INFO through")
}

var (
	promQLMetricRE = regexp.MustCompile(`\bwaybill_[a-z0-9_]+\b`)
	exportedNameRE = regexp.MustCompile(`(?m)^(waybill_[a-z0-9_]+)[{ ]`)
)

// requireOpsAssetsQueryMetrics: every waybill_ metric the Prometheus rules and the Grafana
// dashboard query is in the binary's /metrics, or (a vector no event has touched yet) declared
// by that name in internal/.
func requireOpsAssetsQueryMetrics(t *testing.T, metrics string) {
	t.Helper()
	exported := map[string]bool{}
	for _, m := range exportedNameRE.FindAllStringSubmatch(metrics, -1) {
		exported[m[1]] = true
	}
	require.NotEmpty(t, exported)
	declared := func(name string) bool {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
		files, _ := filepath.Glob("../../internal/*/*.go")
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			if !strings.HasSuffix(f, "_test.go") && bytes.Contains(b, []byte(`"`+base+`"`)) {
				return true
			}
		}
		return false
	}
	for _, asset := range []string{"../../docs/ops/prometheus-rules.yml", "../../docs/ops/grafana-dashboard.json"} {
		for _, expr := range opsAssetQueries(t, asset) {
			for _, name := range promQLMetricRE.FindAllString(expr, -1) {
				require.True(t, exported[name] || declared(name), "%s queries %s, which Waybill does not export\n(expr: %s)", asset, name, expr)
			}
		}
	}
}

// The ops assets hold what they promise: every alarm has its rule, every panel the dashboard
// needs is there and queries the Prometheus data source chosen on the dashboard.
func TestOpsAssets(t *testing.T) {
	t.Parallel()
	rules := opsAssetRules(t)
	for _, alert := range []string{"WaybillBacklog", "WaybillNewDeadLetters", "WaybillCarrierRefusesCredentials", "WaybillBadWebhookSignatures", "WaybillNoWebhooks"} {
		require.Contains(t, rules, alert, "prometheus-rules.yml: an alert for each built-in alarm")
	}
	for name, r := range rules {
		require.NotEmpty(t, r.Labels["severity"], name)
		require.NotEmpty(t, r.Annotations["summary"], name)
	}

	var d struct {
		Title      string
		UID        string
		Templating struct {
			List []struct{ Name, Type, Query string }
		}
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource *struct{ Type, UID string }
			GridPos    struct{ X, Y, W, H int }
			Targets    []struct {
				RefID      string
				Expr       string
				Datasource *struct{ Type, UID string }
			}
		}
	}
	raw, err := os.ReadFile("../../docs/ops/grafana-dashboard.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.UID)
	require.Len(t, d.Templating.List, 1)
	require.Equal(t, "datasource", d.Templating.List[0].Type)
	require.Equal(t, "prometheus", d.Templating.List[0].Query)
	ids, titles := map[int]bool{}, map[string]bool{}
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		titles[p.Title] = true
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
		require.Positive(t, p.GridPos.W, p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.RefID, p.Title)
			require.Contains(t, tg.Expr, "waybill_", p.Title)
			require.Equal(t, "${datasource}", tg.Datasource.UID, p.Title)
		}
	}
	for _, want := range []string{"Orders by status", "Insert → dispatched latency", "Unfinished jobs by queue and state", "Dead letters open", "Carrier requests by outcome"} {
		require.True(t, titles[want], "dashboard panel %q", want)
	}
}

type opsRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func opsAssetRules(t *testing.T) map[string]opsRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []opsRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err := os.ReadFile("../../docs/ops/prometheus-rules.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &f))
	rules := map[string]opsRule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r
		}
	}
	return rules
}

// opsAssetQueries returns every PromQL expression of a rules file or dashboard.
func opsAssetQueries(t *testing.T, path string) []string {
	t.Helper()
	var exprs []string
	if strings.HasSuffix(path, ".yml") {
		for _, r := range opsAssetRules(t) {
			exprs = append(exprs, r.Expr)
		}
		return exprs
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var d struct {
		Panels []struct{ Targets []struct{ Expr string } }
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	require.NotEmpty(t, exprs, fmt.Sprintf("%s has no queries", path))
	return exprs
}
