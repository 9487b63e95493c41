package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Files `waybill dev` keeps in its directory (DefaultDir, gitignored).
const (
	SecretsFile = "dev-secrets.json" // the River UI password and intake token, kept across runs
	StackFile   = "dev-stack.json"   // where the running stack is, while it runs
)

// ErrNoStack is returned by ReadStack when no `waybill dev` has recorded itself in the directory.
var ErrNoStack = errors.New("no dev stack recorded")

// Secrets are the dev stack's credentials: random per checkout, made on the first run and
// reused by every later one, so bookmarks and shell history keep working.
type Secrets struct {
	AdminPassword string `json:"admin_password"`
	IntakeToken   string `json:"intake_token"`
}

// LoadSecrets reads dir/SecretsFile, creating it (mode 0600) with random values on first use.
// Two runs creating it at once agree on the first one written.
func LoadSecrets(dir string) (Secrets, error) {
	path := filepath.Join(dir, SecretsFile)
	var s Secrets
	b, err := os.ReadFile(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return Secrets{}, fmt.Errorf("%s: %w (delete it to make new secrets)", path, err)
		}
		if s.AdminPassword != "" && s.IntakeToken != "" {
			return s, nil
		}
	} else if !missing {
		return Secrets{}, err
	}
	if s.AdminPassword == "" {
		s.AdminPassword = randomHex(12)
	}
	if s.IntakeToken == "" {
		s.IntakeToken = randomHex(16)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Secrets{}, err
	}
	if err := writeFileAtomic(path, s, missing); err != nil {
		if errors.Is(err, fs.ErrExist) { // another run made it first: use that one
			return LoadSecrets(dir)
		}
		return Secrets{}, err
	}
	return s, nil
}

// Stack is a running `waybill dev`, recorded in dir/StackFile once it serves and removed when it
// stops, so `waybill demo` and `waybill dead` find its database without DATABASE_URL.
type Stack struct {
	PID         int       `json:"pid"`
	DatabaseURL string    `json:"database_url"`
	ServiceURL  string    `json:"service_url"`
	SandboxURL  string    `json:"sandbox_url"`
	StartedAt   time.Time `json:"started_at"`
}

// WriteStack records s in dir/StackFile (mode 0600: the database URL may hold a password).
func WriteStack(dir string, s Stack) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, StackFile), s, false)
}

// ReadStack returns the stack recorded in dir, or an error wrapping ErrNoStack.
func ReadStack(dir string) (Stack, error) {
	path := filepath.Join(dir, StackFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Stack{}, fmt.Errorf("%w in %s", ErrNoStack, path)
	}
	if err != nil {
		return Stack{}, err
	}
	var s Stack
	if err := json.Unmarshal(b, &s); err != nil || s.DatabaseURL == "" {
		return Stack{}, fmt.Errorf("%w: %s is unreadable (%v); delete it", ErrNoStack, path, err)
	}
	return s, nil
}

// RemoveStack deletes dir/StackFile if it is the record of process pid, leaving a newer
// stack's record alone.
func RemoveStack(dir string, pid int) error {
	s, err := ReadStack(dir)
	if err != nil || s.PID != pid {
		return nil
	}
	return os.Remove(filepath.Join(dir, StackFile))
}

// Serving reports whether the stack's service answers /healthz.
func (s Stack) Serving(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.ServiceURL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/healthz answered %s", s.ServiceURL, resp.Status)
	}
	return nil
}

// writeFileAtomic writes v as JSON to path through a temporary file, so a reader never sees
// half a file. With exclusive, an existing path is left alone and fs.ErrExist returned.
func writeFileAtomic(path string, v any, exclusive bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil { // CreateTemp made it 0600
		return err
	}
	if exclusive {
		return os.Link(tmp.Name(), path)
	}
	return os.Rename(tmp.Name(), path)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
