//go:build unix

package devenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClusterHome(t *testing.T) {
	t.Parallel()
	other := &account{name: "someone-else", uid: 4242424, gid: 4242424}
	dir := filepath.Join(t.TempDir(), ".waybill") // t.TempDir is mode 0700: out of other's reach

	home, err := clusterHome(dir, other)
	require.NoError(t, err)
	fallback := home
	t.Cleanup(func() { os.RemoveAll(fallback) })
	require.True(t, strings.HasPrefix(home, filepath.Join(os.TempDir(), "waybill-pg-")), home)
	require.True(t, other.canReach(home))
	require.DirExists(t, dir, "the project's dir is still made")
	again, err := clusterHome(dir, other)
	require.NoError(t, err)
	require.Equal(t, home, again, "the same project maps to the same place")

	// Once every directory down to it is searchable, the project's own dir is used.
	require.NoError(t, os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	home, err = clusterHome(dir, other)
	require.NoError(t, err)
	require.Equal(t, dir, home)

	// The current user (nil account) always uses it.
	home, err = clusterHome(dir, nil)
	require.NoError(t, err)
	require.Equal(t, dir, home)
}
