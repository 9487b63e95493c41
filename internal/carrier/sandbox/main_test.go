package sandbox

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package when a sandbox goroutine outlives its test: Close must stop them.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForSandboxGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "sandbox goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitForSandboxGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
		var leaked []string
		for _, g := range strings.Split(sb.String(), "\n\n") {
			if strings.Contains(g, "sandbox.(*webhookSender)") || strings.Contains(g, "sandbox.(*Server).runBatchJob") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
