package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/waybill/waybill/db"
)

// Schema holds every Waybill and River table.
const Schema = "waybill"

// River's schema is applied by River's own migrator, called from goose migration 1, rather than
// by copies of River's SQL: rivermigrate keeps its river_migration bookkeeping and schema
// templating right, and goose still decides the order against our own migrations. Each River
// upgrade that brings a new River schema version gets a new goose Go migration pinning it, so
// `waybill migrate status` shows exactly which River schema a database has.
var riverMigrations = []struct {
	gooseVersion int64
	riverVersion int
}{
	{gooseVersion: 1, riverVersion: 8}, // River v0.51
}

// ensureSchemaSQL runs before goose because goose keeps its version table in the schema. The
// transaction-scoped advisory lock stops two instances starting at once from racing on it.
const ensureSchemaSQL = `SELECT pg_advisory_xact_lock(7364021); CREATE SCHEMA IF NOT EXISTS ` + Schema

// Migrator applies and reports Waybill's migrations.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
	logger   *slog.Logger
}

// New opens a migrator on databaseURL. Close it when done.
func New(ctx context.Context, databaseURL string, logger *slog.Logger) (*Migrator, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	if _, err := sqlDB.ExecContext(ctx, ensureSchemaSQL); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("create schema %s: %w", Schema, err)
	}

	// Session lock: of two instances starting at once, one migrates and the other waits.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	migrationsFS, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	goMigrations := make([]*goose.Migration, 0, len(riverMigrations))
	for _, rm := range riverMigrations {
		goMigrations = append(goMigrations, riverGooseMigration(rm.gooseVersion, rm.riverVersion, logger))
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrationsFS,
		goose.WithSessionLocker(locker),
		goose.WithTableName(Schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goMigrations...),
	)
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("create migration provider: %w", err)
	}
	return &Migrator{db: sqlDB, provider: provider, logger: logger}, nil
}

// Close releases the migrator's connections.
func (m *Migrator) Close() error { return m.provider.Close() }

// Up applies every pending migration, then warns if the database lets every role connect.
func (m *Migrator) Up(ctx context.Context) ([]*goose.MigrationResult, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", err)
	}
	m.warnPublicConnect(ctx)
	return res, nil
}

// PublicCanConnect reports whether PUBLIC (every role of the cluster) has CONNECT on the
// database, as Postgres grants by default. Any login that can connect can LISTEN and NOTIFY on
// every channel, which has no permission of its own, so only Waybill's logins should connect.
func (m *Migrator) PublicCanConnect(ctx context.Context) (bool, error) {
	var can bool
	err := m.db.QueryRowContext(ctx, `SELECT has_database_privilege('public', current_database(), 'CONNECT')`).Scan(&can)
	if err != nil {
		return false, fmt.Errorf("check CONNECT for PUBLIC: %w", err)
	}
	return can, nil
}

func (m *Migrator) warnPublicConnect(ctx context.Context) {
	can, err := m.PublicCanConnect(ctx)
	switch {
	case err != nil:
		m.logger.WarnContext(ctx, "could not check who may connect to the database", "error", err)
	case can:
		var db string
		_ = m.db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&db)
		m.logger.WarnContext(ctx, "every role may connect to this database (CONNECT granted to PUBLIC): any login on the server can LISTEN to and NOTIFY Waybill's channels; "+
			"revoke it and grant CONNECT to Waybill's logins only (README, Security)",
			"database", db,
			"fix", fmt.Sprintf(`REVOKE CONNECT ON DATABASE %q FROM PUBLIC; GRANT CONNECT ON DATABASE %q TO <waybill's login>, <monolith's login>, <ops logins>;`, db, db))
	}
}

// Down rolls back the newest applied migration.
func (m *Migrator) Down(ctx context.Context) (*goose.MigrationResult, error) {
	res, err := m.provider.Down(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate down: %w", err)
	}
	return res, nil
}

// Pending reports whether any migration is not applied yet.
func (m *Migrator) Pending(ctx context.Context) (bool, error) {
	return m.provider.HasPending(ctx)
}

// WriteStatus prints one line per migration: version, state, when applied and source.
func (m *Migrator) WriteStatus(ctx context.Context, w io.Writer) error {
	statuses, err := m.provider.Status(ctx)
	if err != nil {
		return fmt.Errorf("migration status: %w", err)
	}
	for _, s := range statuses {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		name := s.Source.Path
		if s.Source.Type == goose.TypeGo {
			name = riverName(s.Source.Version)
		}
		fmt.Fprintf(w, "%05d  %-28s  %s\n", s.Source.Version, applied, name)
	}
	return nil
}

// Up is the one-call form used by `serve`, `dev` and tests.
func Up(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	m, err := New(ctx, databaseURL, logger)
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = m.Up(ctx)
	return err
}

func riverName(gooseVersion int64) string {
	for _, rm := range riverMigrations {
		if rm.gooseVersion == gooseVersion {
			return fmt.Sprintf("River schema version %d (rivermigrate)", rm.riverVersion)
		}
	}
	return "go migration"
}

func riverGooseMigration(gooseVersion int64, riverVersion int, logger *slog.Logger) *goose.Migration {
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), &rivermigrate.Config{Logger: logger, Schema: Schema})
	if err != nil {
		// Only a programming error (bad config) gets here.
		panic(fmt.Sprintf("rivermigrate: %v", err))
	}
	fromVersion := 0 // River schema version before this goose migration
	for i, rm := range riverMigrations {
		if rm.gooseVersion == gooseVersion && i > 0 {
			fromVersion = riverMigrations[i-1].riverVersion
		}
	}
	// One transaction per River version, as River's own Migrate does: a version may use an enum
	// value that the one before it added, which Postgres forbids within one transaction.
	step := func(ctx context.Context, sqlDB *sql.DB, direction rivermigrate.Direction, target int) error {
		return withPgxTx(ctx, sqlDB, func(tx pgx.Tx) error {
			_, err := migrator.MigrateTx(ctx, tx, direction, &rivermigrate.MigrateOpts{TargetVersion: target})
			return err
		})
	}
	up := func(ctx context.Context, sqlDB *sql.DB) error {
		for v := fromVersion + 1; v <= riverVersion; v++ {
			if err := step(ctx, sqlDB, rivermigrate.DirectionUp, v); err != nil {
				return fmt.Errorf("river schema version %d: %w", v, err)
			}
		}
		return nil
	}
	down := func(ctx context.Context, sqlDB *sql.DB) error {
		for v := riverVersion - 1; v >= fromVersion; v-- {
			target := v
			if v == 0 {
				target = -1 // River's first version, river_migration itself
			}
			if err := step(ctx, sqlDB, rivermigrate.DirectionDown, target); err != nil {
				return fmt.Errorf("river schema down to version %d: %w", v, err)
			}
		}
		return nil
	}
	return goose.NewGoMigration(gooseVersion, &goose.GoFunc{RunDB: up}, &goose.GoFunc{RunDB: down})
}

// withPgxTx runs fn in a pgx transaction on one of sqlDB's connections: rivermigrate's pgx
// driver needs a pgx.Tx, and River's database/sql driver is not served at this River version.
func withPgxTx(ctx context.Context, sqlDB *sql.DB, fn func(pgx.Tx) error) error {
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return errors.New("migrate: connection is not a pgx connection")
		}
		return pgx.BeginFunc(ctx, sc.Conn(), fn)
	})
}

// RiverSchemaID identifies the River schema versions these migrations apply (tests key their
// template database on it).
func RiverSchemaID() string {
	return fmt.Sprint(riverMigrations)
}

// ErrPending means the database lacks migrations this binary has: run `waybill migrate up`.
var ErrPending = errors.New("the database has pending migrations: run `waybill migrate up` first")

// CheckApplied reports ErrPending unless every migration of this binary is applied. Unlike
// Pending it runs no DDL and takes no lock: `waybill serve` calls it under a login that may
// only read and write rows (waybill_service).
func CheckApplied(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, `SELECT version_id FROM `+Schema+`.goose_db_version WHERE is_applied`)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable {
			return fmt.Errorf("%w (schema %s has no migrations at all)", ErrPending, Schema)
		}
		return fmt.Errorf("read applied migrations: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read applied migrations: %w", err)
	}
	have := make(map[int64]bool, len(applied))
	for _, v := range applied {
		have[v] = true
	}
	want, err := Versions()
	if err != nil {
		return err
	}
	for _, v := range want {
		if !have[v] {
			return fmt.Errorf("%w (migration %05d is not applied)", ErrPending, v)
		}
	}
	return nil
}

// Versions lists every migration version this binary carries: River's Go migrations and the SQL
// files of db/migrations.
func Versions() ([]int64, error) {
	var out []int64
	for _, rm := range riverMigrations {
		out = append(out, rm.gooseVersion)
	}
	entries, err := fs.ReadDir(db.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration file %s: %w", e.Name(), err)
		}
		out = append(out, v)
	}
	return out, nil
}
