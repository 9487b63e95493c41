package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cliResult is what one run of the real binary printed and how it ended.
type cliResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runCLI runs `waybill args…` to its end in dir with exactly env (plus PATH and GORACE).
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, waybillBin, args...)
	cmd.Dir = dir
	// The race detector otherwise waits a second at every exit.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("waybill %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// Every command and subcommand answers -h and --help with its usage on stdout and exit status 0,
// and starts nothing: no Postgres found or created, no port opened, no .waybill written, no
// DATABASE_URL needed. (Before, `dev --help` printed its usage and then ran.)
func TestHelpStartsNothing(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{},
		{"serve"},
		{"migrate"}, {"migrate", "up"}, {"migrate", "down"}, {"migrate", "status"},
		{"dev"}, {"dev", "--demo", "5", "--addr", "127.0.0.1:0"},
		{"demo"}, {"demo", "20"},
		{"sandbox"}, {"sandbox", "--addr", "127.0.0.1:0", "--error-rate", "0.5"},
		{"dead"}, {"dead", "list"}, {"dead", "list", "--kind", "dispatch_order"}, {"dead", "redrive"}, {"dead", "redrive", "12", "--dry-run"},
		{"archive"}, {"archive", "--older-than", "90d"},
		{"carriers"}, {"carriers", "check"}, {"carriers", "register", "--url", "https://w.example.com"},
	}
	dir := t.TempDir()
	for _, cmd := range commands {
		for _, help := range []string{"-h", "--help"} {
			args := append(append([]string{}, cmd...), help)
			name := "waybill " + strings.Join(args, " ")
			res := runCLI(t, dir, nil, args...)
			require.Equal(t, 0, res.code, "%s: exit status\nstdout: %s\nstderr: %s", name, res.stdout, res.stderr)
			require.Contains(t, strings.ToLower(res.stdout), "usage", "%s: usage on stdout", name)
			require.Empty(t, res.stderr, "%s: nothing on stderr", name)
			for _, started := range []string{"postgres:", "Waybill is running", "sandbox carrier (Onfleet API) on", "Inserted", "applied ", "rolled back", "No open dead letters", "archived"} {
				require.NotContains(t, res.stdout, started, "%s started something", name)
			}
			require.Less(t, res.took, 10*time.Second, name)
		}
	}
	// `waybill help CMD` is `waybill CMD -h`.
	res := runCLI(t, dir, nil, "help", "dev")
	require.Equal(t, 0, res.code)
	require.Contains(t, res.stdout, "usage: waybill dev")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "help wrote files (a .waybill directory means dev ran)")

	// Mistakes still print the usage to stderr, with exit status 2.
	for _, args := range [][]string{{"dev", "--bogus"}, {"demo", "many"}, {"serve", "now"}, {"migrate", "sideways"}} {
		res := runCLI(t, dir, nil, args...)
		require.Equal(t, 2, res.code, "waybill %s", strings.Join(args, " "))
		require.Empty(t, res.stdout)
		require.NotEmpty(t, res.stderr)
	}
}
