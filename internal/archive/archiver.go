package archive

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// Options configure one archive run.
type Options struct {
	OlderThan time.Duration // rows older than now minus this are archived
	Dir       string        // created if missing
	BatchSize int           // rows per file; default 10000
	Now       func() time.Time

	// afterWrite runs after a batch file is in place and before its rows are deleted; tests
	// return an error from it to simulate a crash at the worst moment.
	afterWrite func(table, path string) error
}

// DefaultBatchSize is the rows per file when Options.BatchSize is zero.
const DefaultBatchSize = 10000

// TableResult is what one run did to one table.
type TableResult struct {
	Table     string
	Cutoff    time.Time
	Rows      int64    // archived and deleted in this run
	Files     []string // written in this run
	Recovered int64    // rows of an interrupted earlier batch deleted at the start
}

type row struct {
	id   int64
	line string
}

// table is one archived table. Order: order_events before webhook_events, so that history rows
// are archived while their webhook_event_id still points at the raw event (deleting a webhook
// event sets that link NULL in the history left behind).
type table struct {
	name   string
	batch  func(ctx context.Context, db dbsqlc.DBTX, cutoff time.Time, afterID int64, n int32) ([]row, error)
	delete func(ctx context.Context, db dbsqlc.DBTX, ids []int64) (int64, error)
}

var tables = []table{
	{
		name: "order_events",
		batch: func(ctx context.Context, db dbsqlc.DBTX, cutoff time.Time, afterID int64, n int32) ([]row, error) {
			rs, err := dbsqlc.New().OrderEventArchiveBatch(ctx, db, dbsqlc.OrderEventArchiveBatchParams{AfterID: afterID, Cutoff: cutoff, MaxRows: n})
			return rowsOf(rs, err, func(r dbsqlc.OrderEventArchiveBatchRow) row { return row{id: r.ID, line: r.Line} })
		},
		delete: dbsqlc.New().OrderEventDeleteByIDs,
	},
	{
		name: "webhook_events",
		batch: func(ctx context.Context, db dbsqlc.DBTX, cutoff time.Time, afterID int64, n int32) ([]row, error) {
			rs, err := dbsqlc.New().WebhookEventArchiveBatch(ctx, db, dbsqlc.WebhookEventArchiveBatchParams{AfterID: afterID, Cutoff: cutoff, MaxRows: n})
			return rowsOf(rs, err, func(r dbsqlc.WebhookEventArchiveBatchRow) row { return row{id: r.ID, line: r.Line} })
		},
		delete: dbsqlc.New().WebhookEventDeleteByIDs,
	},
}

// rowsOf adapts one query's generated row type.
func rowsOf[R any](rs []R, err error, conv func(R) row) ([]row, error) {
	out := make([]row, len(rs))
	for i, r := range rs {
		out[i] = conv(r)
	}
	return out, err
}

// ErrLocked means another archive run holds the lock.
var ErrLocked = errors.New("archive: another `waybill archive` is running on this database")

// Archive runs one archive pass over every table.
func Archive(ctx context.Context, pool *pgxpool.Pool, opts Options) ([]TableResult, error) {
	if opts.OlderThan <= 0 {
		return nil, errors.New("archive: older-than must be positive")
	}
	if opts.Dir == "" {
		return nil, errors.New("archive: no output directory")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	defer conn.Release()
	q := dbsqlc.New()
	locked, err := q.ArchiveLockTry(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("archive: lock: %w", err)
	}
	if !locked {
		return nil, ErrLocked
	}
	defer func() {
		if err := q.ArchiveUnlock(context.WithoutCancel(ctx), conn); err != nil {
			// A session lock outlives a failed unlock; the connection must not go back to the pool.
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck
		}
	}()

	cutoff := opts.Now().Add(-opts.OlderThan)
	results := make([]TableResult, 0, len(tables))
	for _, t := range tables {
		res, err := archiveTable(ctx, conn.Conn(), t, cutoff, opts)
		results = append(results, res)
		if err != nil {
			return results, fmt.Errorf("archive %s: %w", t.name, err)
		}
	}
	return results, nil
}

func archiveTable(ctx context.Context, conn *pgx.Conn, t table, cutoff time.Time, opts Options) (TableResult, error) {
	res := TableResult{Table: t.name, Cutoff: cutoff}
	files, err := batchFiles(opts.Dir, t.name)
	if err != nil {
		return res, err
	}
	seq := 0
	if len(files) > 0 {
		newest := files[len(files)-1]
		seq = newest.seq
		ids, err := readIDs(newest.path)
		if err != nil {
			return res, fmt.Errorf("read the newest batch %s: %w", newest.path, err)
		}
		if res.Recovered, err = t.delete(ctx, conn, ids); err != nil {
			return res, fmt.Errorf("finish the batch in %s: %w", newest.path, err)
		}
	}

	var afterID int64
	for {
		seq++
		path := filepath.Join(opts.Dir, fmt.Sprintf("%s-%010d.jsonl.gz", t.name, seq))
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			rows, err := t.batch(ctx, tx, cutoff, afterID, int32(opts.BatchSize))
			if err != nil || len(rows) == 0 {
				return err
			}
			if err := writeBatch(path, rows); err != nil {
				return err
			}
			res.Files = append(res.Files, path)
			if opts.afterWrite != nil {
				if err := opts.afterWrite(t.name, path); err != nil {
					return err
				}
			}
			ids := make([]int64, len(rows))
			for i, r := range rows {
				ids[i] = r.id
			}
			deleted, err := t.delete(ctx, tx, ids)
			if err != nil {
				return err
			}
			if deleted != int64(len(ids)) {
				// Impossible while the rows are locked; the file stays and the next run finishes it.
				return fmt.Errorf("wrote %d rows to %s but deleted %d", len(ids), path, deleted)
			}
			n, afterID = len(rows), ids[len(ids)-1]
			return nil
		})
		if err != nil {
			return res, err
		}
		res.Rows += int64(n)
		if n < opts.BatchSize {
			return res, nil
		}
	}
}

type batchFile struct {
	path string
	seq  int
}

// batchFiles lists a table's final batch files by sequence number and removes temporary files
// a crash left behind.
func batchFiles(dir, tableName string) ([]batchFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	final := regexp.MustCompile(`^` + regexp.QuoteMeta(tableName) + `-([0-9]{10})\.jsonl\.gz$`)
	temp := regexp.MustCompile(`^` + regexp.QuoteMeta(tableName) + `-[0-9]{10}\.jsonl\.gz\.tmp$`)
	var files []batchFile
	for _, e := range entries {
		switch name := e.Name(); {
		case temp.MatchString(name):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
		case final.MatchString(name):
			seq, err := strconv.Atoi(final.FindStringSubmatch(name)[1])
			if err != nil {
				return nil, err
			}
			files = append(files, batchFile{path: filepath.Join(dir, name), seq: seq})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].seq < files[j].seq })
	return files, nil
}

// writeBatch writes rows as gzip JSON Lines to path, durably: temp file, fsync, rename, fsync
// of the directory.
func writeBatch(path string, rows []row) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := bufio.NewWriterSize(f, 1<<16)
	zw := gzip.NewWriter(buf)
	for _, r := range rows {
		if _, err := io.WriteString(zw, r.line); err != nil {
			return err
		}
		if _, err := io.WriteString(zw, "\n"); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// readIDs returns the id of every row in a batch file.
func readIDs(path string) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var ids []int64
	dec := json.NewDecoder(zr)
	for {
		var r struct {
			ID *int64 `json:"id"`
		}
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			return ids, nil
		} else if err != nil {
			return nil, err
		}
		if r.ID == nil {
			return nil, fmt.Errorf("a row without an id")
		}
		ids = append(ids, *r.ID)
	}
}
