package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// stack is the real Waybill under test: the waybill binary's sandbox carrier and service,
// against the bench's own database, all on 127.0.0.1.
type stack struct {
	bin string
	// sandboxBinary runs the sandbox carrier when set: comparing an older waybill against
	// today's sandbox, whose flags it may not have.
	sandboxBinary string
	dbURL         string
	outDir        string
	secretHex     string
	serveEnv      []string // the user's -serve-env overrides, applied last
	serveDB       string   // DATABASE_URL of serve: dbURL plus -serve-db-params
	pprof         bool     // serve Go's profiler (WAYBILL_PPROF_ADDR) for the bench to read
	logger        *slog.Logger

	sandbox    *process
	sandboxURL string
	serve      *process
	serveURL   string
	pprofURL   string
}

// benchEnv is the environment of the bench's children: the bench's own, minus every setting
// of Waybill's, so nothing from the caller's shell (a real Slack or SMTP URL, a real Onfleet
// key) leaks in; the bench sets what it needs and -serve-env adds the rest explicitly.
func benchEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "DATABASE_URL", k == "SMTP_URL", k == "MAIL_FROM", k == "LOGISTICS_EMAIL",
			k == "SLACK_WEBHOOK_URL", strings.HasPrefix(k, "WAYBILL_"), strings.HasPrefix(k, "ONFLEET_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// buildWaybill compiles ./cmd/waybill of the module the bench runs in.
func buildWaybill(ctx context.Context, dir string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("find the waybill module (run from the repository, or pass -waybill-bin): %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "waybill")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/waybill")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/waybill: %w\n%s", err, out)
	}
	return bin, nil
}

func (s *stack) migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, s.bin, "migrate", "up")
	cmd.Env = benchEnv("DATABASE_URL=" + s.dbURL)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(s.outDir, "migrate.log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("waybill migrate up: %w\n%s", err, out)
	}
	return nil
}

func (s *stack) startSandbox(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	p, err := startProcess("waybill sandbox", s.sandboxBin(), []string{"sandbox", "--addr", addr, "--rate-limit", "0"}, benchEnv(), filepath.Join(s.outDir, "sandbox.log"))
	if err != nil {
		return err
	}
	s.sandbox = p
	s.sandboxURL = "http://" + addr
	if err := p.waitHTTP(ctx, s.sandboxURL+"/sandbox/stats", 30*time.Second); err != nil {
		return err
	}
	s.logger.Info("sandbox carrier ready", "url", s.sandboxURL, "pid", p.pid())
	return nil
}

func (s *stack) sandboxBin() string { return cmp.Or(s.sandboxBinary, s.bin) }

func (s *stack) startServe(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	env := benchEnv(
		"DATABASE_URL="+cmp.Or(s.serveDB, s.dbURL),
		"WAYBILL_HTTP_ADDR="+addr,
		"ONFLEET_BASE_URL="+s.sandboxURL,
		"ONFLEET_API_KEY=waybill-bench",
		"ONFLEET_RATE_LIMIT=0",
		"ONFLEET_WEBHOOK_SECRET="+s.secretHex,
		"WAYBILL_LOG_LEVEL=warn",
	)
	s.pprofURL = ""
	if s.pprof {
		pprofAddr, err := freeAddr()
		if err != nil {
			return err
		}
		env = append(env, "WAYBILL_PPROF_ADDR="+pprofAddr)
		s.pprofURL = "http://" + pprofAddr
	}
	env = append(env, s.serveEnv...)
	p, err := startProcess("waybill serve", s.bin, []string{"serve"}, env, filepath.Join(s.outDir, "serve.log"))
	if err != nil {
		return err
	}
	s.serve = p
	s.serveURL = "http://" + addr
	if err := p.waitHTTP(ctx, s.serveURL+"/readyz", 60*time.Second); err != nil {
		return err
	}
	s.logger.Info("waybill serve ready", "url", s.serveURL, "pid", p.pid())
	return nil
}

func (s *stack) stopServe() error {
	if s.serve == nil {
		return nil
	}
	err := s.serve.stop(30 * time.Second)
	s.serve = nil
	return err
}

// close stops everything the stack started, the service before its carrier.
func (s *stack) close() {
	if err := s.stopServe(); err != nil {
		s.logger.Warn("stop serve", "error", err)
	}
	if s.sandbox != nil {
		if err := s.sandbox.stop(10 * time.Second); err != nil {
			s.logger.Warn("stop sandbox", "error", err)
		}
		s.sandbox = nil
	}
}

// SandboxStats is what the sandbox carrier counted; Raw keeps its whole answer.
type SandboxStats struct {
	TasksCreated       int64           `json:"tasks_created"`
	DuplicatedExternal int64           `json:"duplicated_external_ids"`
	Raw                json.RawMessage `json:"raw"`
}

// sandboxStats reads GET /sandbox/stats. It reads tasks_created and the count of external ids
// with more than one task under any of the names the sandbox may use for it.
func (s *stack) sandboxStats(ctx context.Context) (SandboxStats, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.sandboxURL+"/sandbox/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return SandboxStats{}, fmt.Errorf("sandbox stats: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return SandboxStats{}, fmt.Errorf("sandbox stats: %s %v", resp.Status, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return SandboxStats{}, fmt.Errorf("sandbox stats: %w", err)
	}
	st := SandboxStats{Raw: raw}
	st.TasksCreated = jsonCount(m["tasks_created"])
	for _, k := range []string{"duplicated_external_ids", "duplicate_external_ids", "duplicated", "duplicates"} {
		if v, ok := m[k]; ok {
			st.DuplicatedExternal = jsonCount(v)
			break
		}
	}
	return st, nil
}

// jsonCount reads a count that is either a number or a list/object of the things counted.
func jsonCount(v json.RawMessage) int64 {
	var n float64
	if json.Unmarshal(v, &n) == nil {
		return int64(n)
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil {
		return int64(len(list))
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(v, &obj) == nil {
		return int64(len(obj))
	}
	return 0
}
