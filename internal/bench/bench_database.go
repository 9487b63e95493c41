package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// benchDatabase is the bench's own database, created on the server of -database-url and
// dropped at the end: the bench never reads or writes anyone else's.
type benchDatabase struct {
	adminURL string
	name     string
	url      string
}

// benchDBPattern names the bench's databases; the number is the creating bench's pid, so a
// database left behind by a killed bench is recognised and dropped by the next one.
var benchDBPattern = regexp.MustCompile(`^waybill_bench_(\d+)$`)

func createBenchDatabase(ctx context.Context, adminURL string, logger *slog.Logger) (*benchDatabase, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(adminURL), err)
	}
	defer admin.Close(ctx)
	dropStaleBenchDatabases(ctx, admin, logger)

	name := fmt.Sprintf("waybill_bench_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return nil, fmt.Errorf("drop old %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	return &benchDatabase{adminURL: adminURL, name: name, url: u.String()}, nil
}

// dropStaleBenchDatabases drops waybill_bench_<pid> databases whose bench is gone.
func dropStaleBenchDatabases(ctx context.Context, admin *pgx.Conn, logger *slog.Logger) {
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'waybill_bench_%'")
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		m := benchDBPattern.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its bench may still run
		}
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err == nil {
			logger.Info("dropped a database left by an earlier bench", "database", n)
		}
	}
}

// drop removes the database, whatever is still connected to it.
func (d *benchDatabase) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, d.adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
	return err
}

// newPool opens a pool on the bench database with n connections, all opened up front so that
// connecting is not measured.
func newPool(ctx context.Context, dbURL, appName string, n int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = n
	cfg.MinConns = n
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	// The bench's own queries must not borrow parallel workers from the system under test.
	cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Warm every connection.
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("connect: %w", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return pool, nil
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	return p.Redacted()
}
