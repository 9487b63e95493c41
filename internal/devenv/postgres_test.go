package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// deadURL is a Postgres URL on a local port nothing listens on.
func deadURL(t *testing.T, userinfo string) string {
	t.Helper()
	port, err := freePort()
	require.NoError(t, err)
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", userinfo, port)
}

// noBinaries makes the private-cluster path find no PostgreSQL installation.
func noBinaries(t *testing.T) func() []string {
	dir := t.TempDir()
	return func() []string { return []string{dir} }
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dropDatabaseOnCleanup drops a database the test made FindPostgres create on the test server.
func dropDatabaseOnCleanup(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbtest.AdminURL())
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
}

func currentUserAndDatabase(t *testing.T, dbURL string) (user, database string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &database))
	return user, database
}

func TestFindPostgresDatabaseURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Answers", func(t *testing.T) {
		t.Parallel()
		dbURL := dbtest.NewDatabase(t)
		pg, err := FindPostgres(ctx, Options{DatabaseURL: dbURL, LocalURL: deadURL(t, "root"), Dir: t.TempDir()}, testLogger(t))
		require.NoError(t, err)
		require.Equal(t, dbURL, pg.URL)
		require.Equal(t, SourceDatabaseURL, pg.Source)
		require.NoError(t, pg.Stop(ctx))
	})

	t.Run("DoesNotAnswer", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A local server answers, yet a DATABASE_URL that does not is an error, not a fallback.
		_, err := FindPostgres(ctx, Options{DatabaseURL: deadURL(t, "app:s3cret"), LocalURL: dbtest.AdminURL(), Dir: dir}, testLogger(t))
		require.Error(t, err)
		require.Contains(t, err.Error(), "DATABASE_URL (postgres://app:xxxxx@127.0.0.1:")
		require.Contains(t, err.Error(), "does not answer")
		require.Contains(t, err.Error(), "unset it")
		require.NotContains(t, err.Error(), "s3cret")
		require.NoDirExists(t, filepath.Join(dir, "pg"))
	})

	t.Run("NotAURL", func(t *testing.T) {
		t.Parallel()
		_, err := FindPostgres(ctx, Options{DatabaseURL: "host=127.0.0.1 password=s3cret port=1"}, testLogger(t))
		require.Error(t, err)
		require.Contains(t, err.Error(), "DATABASE_URL (a connection string) does not answer")
		require.NotContains(t, err.Error(), "s3cret")
	})
}

func TestFindPostgresLocalServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CreatesTheDevDatabase", func(t *testing.T) {
		t.Parallel()
		// A name that only works quoted.
		name := `Waybill dev "` + randomSuffix() + `"; --`
		dropDatabaseOnCleanup(t, name)
		opts := Options{LocalURL: dbtest.AdminURL(), DevDatabase: name, Dir: t.TempDir(), binDirs: noBinaries(t)}

		pg, err := FindPostgres(ctx, opts, testLogger(t))
		require.NoError(t, err)
		require.Equal(t, SourceLocalServer, pg.Source)
		_, database := currentUserAndDatabase(t, pg.URL)
		require.Equal(t, name, database)
		require.NoError(t, pg.Stop(ctx))

		// The second run finds the database there.
		again, err := FindPostgres(ctx, opts, testLogger(t))
		require.NoError(t, err)
		require.Equal(t, pg.URL, again.URL)
		require.NoDirExists(t, filepath.Join(opts.Dir, "pg"))
	})

	t.Run("RetriesAsPostgres", func(t *testing.T) {
		t.Parallel()
		canLogin := false
		conn, err := pgx.Connect(ctx, dbtest.AdminURL())
		require.NoError(t, err)
		_ = conn.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'postgres'").Scan(&canLogin)
		conn.Close(ctx)
		if !canLogin {
			t.Skip("the test server has no postgres role that can log in")
		}

		name := "waybill_dev_t_" + randomSuffix()
		dropDatabaseOnCleanup(t, name)
		u, err := url.Parse(dbtest.AdminURL())
		require.NoError(t, err)
		u.User = url.User("no_such_role_" + randomSuffix())

		pg, err := FindPostgres(ctx, Options{LocalURL: u.String(), DevDatabase: name, Dir: t.TempDir(), binDirs: noBinaries(t)}, testLogger(t))
		require.NoError(t, err)
		require.Equal(t, SourceLocalServer, pg.Source)
		user, database := currentUserAndDatabase(t, pg.URL)
		require.Equal(t, "postgres", user)
		require.Equal(t, name, database)
	})
}

func TestFindPostgresNothingFound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := FindPostgres(context.Background(), Options{LocalURL: deadURL(t, "root"), Dir: dir, binDirs: noBinaries(t)}, testLogger(t))
	require.ErrorIs(t, err, ErrNoPostgres)
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		"DATABASE_URL: not set",
		"a server at postgres://root@127.0.0.1:",
		"connect", // the reason the local probe failed
		"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH",
		"set DATABASE_URL",
		"sudo apt-get install postgresql",
		"docker compose up",
	} {
		require.Contains(t, msg, want)
	}
	require.NoDirExists(t, filepath.Join(dir, "pg"))
}

func TestFindPostgresPrivateCluster(t *testing.T) {
	t.Parallel()
	if len(findBinaries(context.Background(), defaultBinDirs())) == 0 {
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH; apt-get install postgresql to run this test")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// t.TempDir is private to its owner; when running as root the cluster runs as another user,
	// who must reach it.
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	opts := Options{LocalURL: deadURL(t, "root"), Dir: dir, Stdout: t.Output()}

	pg, err := FindPostgres(ctx, opts, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	require.Equal(t, SourcePrivateCluster, pg.Source)
	user, database := currentUserAndDatabase(t, pg.URL)
	require.Equal(t, clusterUser, user)
	require.Equal(t, DefaultDevDatabase, database)

	u, err := url.Parse(pg.URL)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", u.Hostname())
	require.FileExists(t, filepath.Join(dir, "pg", "PG_VERSION"))
	require.FileExists(t, filepath.Join(dir, "pg.log"))
	require.FileExists(t, filepath.Join(dir, "pg", ".s.PGSQL."+u.Port()), "the unix socket lives in the data directory")
	port, err := os.ReadFile(filepath.Join(dir, "pg.port"))
	require.NoError(t, err)
	require.Equal(t, u.Port()+"\n", string(port))

	// A second run while it is running reuses it, and does not own it.
	again, err := FindPostgres(ctx, opts, testLogger(t))
	require.NoError(t, err)
	require.Equal(t, pg.URL, again.URL)
	require.NoError(t, again.Stop(ctx))
	currentUserAndDatabase(t, pg.URL) // still up

	// Stop stops it.
	require.NoError(t, pg.Stop(ctx))
	require.NoError(t, pg.Stop(ctx), "a second Stop is harmless")
	require.Error(t, ping(ctx, pg.URL, localProbeTimeout))

	// The next run starts the same cluster again, on the port it remembered, without initdb.
	versionFile, err := os.Stat(filepath.Join(dir, "pg", "PG_VERSION"))
	require.NoError(t, err)
	third, err := FindPostgres(ctx, opts, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = third.Stop(context.Background()) })
	require.Equal(t, pg.URL, third.URL)
	versionAgain, err := os.Stat(filepath.Join(dir, "pg", "PG_VERSION"))
	require.NoError(t, err)
	require.Equal(t, versionFile.ModTime(), versionAgain.ModTime(), "the cluster was not made again")
	require.NoError(t, third.Stop(ctx))
}

func TestChooseBinaries(t *testing.T) {
	t.Parallel()
	found := []binaries{{dir: "/pg/17/bin", major: 17}, {dir: "/pg/15/bin", major: 15}}

	fresh := filepath.Join(t.TempDir(), "pg")
	b, err := chooseBinaries(found, fresh)
	require.NoError(t, err)
	require.Equal(t, 17, b.major, "a new cluster gets the newest version")

	existing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(existing, "PG_VERSION"), []byte("15\n"), 0o600))
	b, err = chooseBinaries(found, existing)
	require.NoError(t, err)
	require.Equal(t, 15, b.major, "an existing cluster keeps the version that made it")

	require.NoError(t, os.WriteFile(filepath.Join(existing, "PG_VERSION"), []byte("13\n"), 0o600))
	_, err = chooseBinaries(found, existing)
	require.Error(t, err)
	require.Contains(t, err.Error(), "made by PostgreSQL 13, which is not installed")
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres://u:xxxxx@h:5432/db", redact("postgres://u:pw@h:5432/db"))
	require.Equal(t, "postgres://u@h/db", redact("postgres://u@h/db"))
	require.Equal(t, "a connection string", redact("host=h password=pw"))
}
