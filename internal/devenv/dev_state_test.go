package devenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The secrets are made once per directory (a checkout's .waybill), random, private to the user,
// and the same for every later run, even for runs that start at the same moment.
func TestLoadSecrets(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".waybill")

	var wg sync.WaitGroup
	got := make([]Secrets, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = LoadSecrets(dir) })
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.Equal(t, got[0], got[i], "concurrent first runs agree")
	}
	require.Len(t, got[0].AdminPassword, 24)
	require.Len(t, got[0].IntakeToken, 32)
	require.NotEqual(t, got[0].AdminPassword, got[0].IntakeToken)

	fi, err := os.Stat(filepath.Join(dir, SecretsFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	again, err := LoadSecrets(dir)
	require.NoError(t, err)
	require.Equal(t, got[0], again, "later runs reuse them")

	other, err := LoadSecrets(filepath.Join(t.TempDir(), ".waybill"))
	require.NoError(t, err)
	require.NotEqual(t, got[0].AdminPassword, other.AdminPassword, "another checkout gets its own")

	// A file missing a value gets it filled in, keeping the other.
	require.NoError(t, os.WriteFile(filepath.Join(dir, SecretsFile), []byte(`{"admin_password":"kept"}`), 0o600))
	filled, err := LoadSecrets(dir)
	require.NoError(t, err)
	require.Equal(t, "kept", filled.AdminPassword)
	require.NotEmpty(t, filled.IntakeToken)

	require.NoError(t, os.WriteFile(filepath.Join(dir, SecretsFile), []byte(`{`), 0o600))
	_, err = LoadSecrets(dir)
	require.ErrorContains(t, err, "delete it")
}

func TestStackRecord(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".waybill")
	_, err := ReadStack(dir)
	require.ErrorIs(t, err, ErrNoStack)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s := Stack{PID: 42, DatabaseURL: "postgres://u:secret@h/db", ServiceURL: srv.URL, SandboxURL: "http://x", StartedAt: time.Now().UTC().Truncate(time.Second)}
	require.NoError(t, WriteStack(dir, s))
	got, err := ReadStack(dir)
	require.NoError(t, err)
	require.Equal(t, s, got)
	require.NoError(t, got.Serving(context.Background()))
	fi, err := os.Stat(filepath.Join(dir, StackFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the database URL may hold a password")

	// Only the process that wrote the record removes it.
	require.NoError(t, RemoveStack(dir, 7))
	_, err = ReadStack(dir)
	require.NoError(t, err)
	require.NoError(t, RemoveStack(dir, 42))
	_, err = ReadStack(dir)
	require.ErrorIs(t, err, ErrNoStack)

	srv.Close()
	require.Error(t, got.Serving(context.Background()), "a stack that stopped without removing its record does not answer")
}

// The banner's INSERT names an order no other run named, so pasting it after a restart works.
func TestExampleExternalID(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 9, 5, 7, 0, time.UTC)
	seen := map[string]bool{}
	for range 50 {
		id := ExampleExternalID(now)
		require.Regexp(t, `^SO-20261123-090507-[0-9a-f]{4}$`, id)
		seen[id] = true
	}
	require.Greater(t, len(seen), 40, "random within the same second")
}
