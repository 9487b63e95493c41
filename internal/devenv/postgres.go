package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults for Options.
const (
	DefaultLocalURL    = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultDevDatabase = "waybill_dev"
	DefaultDir         = ".waybill"
)

// Where a Postgres came from (Postgres.Source).
const (
	SourceDatabaseURL    = "DATABASE_URL"
	SourceLocalServer    = "local server"
	SourcePrivateCluster = "private cluster"
)

// ErrNoPostgres is returned, wrapped in a message saying what was tried and what to do, when no
// Postgres could be found or started.
var ErrNoPostgres = errors.New("no PostgreSQL found or started")

// Options says where FindPostgres looks.
type Options struct {
	DatabaseURL string    // from DATABASE_URL; when set it is the only candidate
	LocalURL    string    // a server to probe, DefaultLocalURL when empty (a URL, not key=value)
	DevDatabase string    // created on a local server or private cluster, DefaultDevDatabase when empty
	Dir         string    // the private cluster lives in Dir/pg, DefaultDir when empty
	Stdout      io.Writer // one line per decision for the person running `waybill dev`; nil discards

	// binDirs overrides where the PostgreSQL server binaries are looked for (tests).
	binDirs func() []string
}

// Postgres is a database ready for Waybill's migrations.
type Postgres struct {
	URL    string
	Source string // SourceDatabaseURL, SourceLocalServer or SourcePrivateCluster
	// Stop stops the private cluster if this call started it, and is a no-op otherwise. Give it a
	// context that is not already cancelled (the one from a signal usually is).
	Stop func(context.Context) error
}

const (
	databaseURLTimeout = 10 * time.Second
	localProbeTimeout  = 3 * time.Second
)

func noStop(context.Context) error { return nil }

// FindPostgres returns the first Postgres it can use: DATABASE_URL if set (it must answer), else
// the server at LocalURL with DevDatabase created on it (as its user, or as user postgres when
// that one is refused), else a private cluster in Dir/pg that it initialises once and starts.
// Otherwise the error wraps ErrNoPostgres and says what was tried and what to do.
func FindPostgres(ctx context.Context, opts Options, logger *slog.Logger) (*Postgres, error) {
	opts = opts.withDefaults()

	if opts.DatabaseURL != "" {
		if err := ping(ctx, opts.DatabaseURL, databaseURLTimeout); err != nil {
			return nil, fmt.Errorf("DATABASE_URL (%s) does not answer: %w; fix it, or unset it to let waybill dev find or start a local PostgreSQL",
				redact(opts.DatabaseURL), err)
		}
		fmt.Fprintf(opts.Stdout, "postgres: using DATABASE_URL (%s)\n", redact(opts.DatabaseURL))
		return &Postgres{URL: opts.DatabaseURL, Source: SourceDatabaseURL, Stop: noStop}, nil
	}

	tried := []string{"DATABASE_URL: not set"}
	devURL, err := useLocalServer(ctx, opts, logger)
	if err == nil {
		fmt.Fprintf(opts.Stdout, "postgres: using the server at %s, database %s\n", hostPort(devURL), opts.DevDatabase)
		return &Postgres{URL: devURL, Source: SourceLocalServer, Stop: noStop}, nil
	}
	logger.DebugContext(ctx, "no usable local Postgres", "url", redact(opts.LocalURL), "error", err)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
		// It answered, so the user may expect it to be used: say why it is not.
		fmt.Fprintf(opts.Stdout, "postgres: the server at %s answered but cannot be used (%s); trying a private cluster\n", hostPort(opts.LocalURL), pgErr.Message)
	}
	tried = append(tried, fmt.Sprintf("a server at %s: %v", redact(opts.LocalURL), err))

	pg, err := startPrivateCluster(ctx, opts, logger)
	if err == nil {
		return pg, nil
	}
	logger.DebugContext(ctx, "no private cluster", "error", err)
	tried = append(tried, "a private cluster from the machine's PostgreSQL binaries: "+err.Error())

	return nil, fmt.Errorf("%w. Tried:\n  - %s\nDo one of:\n"+
		"  - set DATABASE_URL to a PostgreSQL you can use, e.g. postgres://user:password@host:5432/waybill\n"+
		"  - install PostgreSQL (sudo apt-get install postgresql; on macOS brew install postgresql) and run waybill dev again\n"+
		"  - run Waybill and its PostgreSQL in Docker: docker compose up",
		ErrNoPostgres, strings.Join(tried, "\n  - "))
}

func (o Options) withDefaults() Options {
	if o.LocalURL == "" {
		o.LocalURL = DefaultLocalURL
	}
	if o.DevDatabase == "" {
		o.DevDatabase = DefaultDevDatabase
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.binDirs == nil {
		o.binDirs = defaultBinDirs
	}
	return o
}

// useLocalServer creates DevDatabase on the server at LocalURL and returns its URL. Distribution
// packages only know the postgres role, so a refused login is tried again as postgres.
func useLocalServer(ctx context.Context, opts Options, logger *slog.Logger) (string, error) {
	serverURL := opts.LocalURL
	conn, err := connect(ctx, serverURL, localProbeTimeout)
	if isLoginRefused(err) {
		if alt, altErr := withUser(serverURL, "postgres"); altErr == nil && alt != serverURL {
			logger.DebugContext(ctx, "local Postgres refused the login, trying user postgres", "error", err)
			altConn, altErr := connect(ctx, alt, localProbeTimeout)
			if altErr != nil {
				return "", fmt.Errorf("%w; as user postgres: %w", err, altErr)
			}
			conn, err, serverURL = altConn, nil, alt
		}
	}
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if err := createDatabase(ctx, conn, opts.DevDatabase); err != nil {
		return "", err
	}
	devURL, err := withDatabase(serverURL, opts.DevDatabase)
	if err != nil {
		return "", err
	}
	if err := ping(ctx, devURL, localProbeTimeout); err != nil {
		return "", fmt.Errorf("connect to database %s: %w", opts.DevDatabase, err)
	}
	return devURL, nil
}

// createDatabase creates the database name unless it exists. A concurrent creator is fine.
func createDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func connect(ctx context.Context, dbURL string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.ConnectTimeout = timeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

func ping(ctx context.Context, dbURL string, timeout time.Duration) error {
	conn, err := connect(ctx, dbURL, timeout)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return conn.Ping(ctx)
}

// isLoginRefused reports a server that answered but refused the role or its credentials.
func isLoginRefused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28000" || pgErr.Code == "28P01")
}

func withUser(rawURL, user string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redact(rawURL), err)
	}
	u.User = url.User(user)
	return u.String(), nil
}

func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", redact(rawURL), err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// redact hides a URL's password; a string that is not a URL is not shown at all.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "a connection string"
	}
	return u.Redacted()
}

func hostPort(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Host
	}
	return rawURL
}
