package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
)

var testNow = time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)

type testBundle struct {
	pool    *pgxpool.Pool
	dir     string
	orderID int64
	// Ids of the rows older and newer than 90 days, by table.
	old, recent map[string][]int64
}

func setup(t *testing.T, oldRows, recentRows int) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	o, err := dbsqlc.New().OrderInsert(ctx, pool, dbsqlc.OrderInsertParams{
		ExternalID: "SO-ARCH", Carrier: "onfleet", Kind: "delivery",
		Payload: []byte(`{"recipient":{"name":"Ada","phone":"+4930123"},"address":{"line1":"Hauptstr. 1","city":"Berlin","country":"DE"}}`),
	})
	require.NoError(t, err)
	b := &testBundle{pool: pool, dir: t.TempDir(), orderID: o.ID, old: map[string][]int64{}, recent: map[string][]int64{}}

	// Old and recent rows interleaved by id, as a real table's are near the cutoff.
	for i := 0; len(b.old["webhook_events"]) < oldRows || len(b.recent["webhook_events"]) < recentRows; i++ {
		at, ids := testNow.AddDate(0, 0, -200+i), b.old
		if len(b.old["webhook_events"]) == oldRows || len(b.recent["webhook_events"]) < recentRows && i%2 == 1 {
			at, ids = testNow.AddDate(0, 0, -1), b.recent
		}
		var webhookID, eventID int64
		require.NoError(t, pool.QueryRow(ctx, `
			INSERT INTO waybill.webhook_events (carrier, event_key, body, source_addr, received_at)
			VALUES ('onfleet', $1, $2, '10.0.0.1', $3) RETURNING id`,
			fmt.Sprintf("task-%d:taskCompleted", i), []byte(fmt.Sprintf(`{"n":%d,"raw":"é"}`, i)), at).Scan(&webhookID))
		require.NoError(t, pool.QueryRow(ctx, `
			INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, webhook_event_id, created_at)
			VALUES ($1, 'delivered', 'taskCompleted', $2, true, $3, $4, $2) RETURNING id`,
			o.ID, at, fmt.Sprintf("task-%d:taskCompleted", i), webhookID).Scan(&eventID))
		ids["webhook_events"] = append(ids["webhook_events"], webhookID)
		ids["order_events"] = append(ids["order_events"], eventID)
	}
	require.Len(t, b.old["webhook_events"], oldRows)
	require.Len(t, b.recent["webhook_events"], recentRows)
	return b
}

func (b *testBundle) run(t *testing.T, opts Options, args ...string) (string, error) {
	t.Helper()
	opts.Now = func() time.Time { return testNow }
	var out, errOut bytes.Buffer
	err := runCLI(context.Background(), append([]string{"--older-than", "90d", "--out", b.dir}, args...), b.pool, &out, &errOut, opts)
	return out.String(), err
}

// archived reads every batch file of table back, in file order.
func (b *testBundle) archived(t *testing.T, table string) (files []string, rows []map[string]any) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(b.dir, table+"-*.jsonl.gz"))
	require.NoError(t, err)
	sort.Strings(files)
	for _, path := range files {
		f, err := os.Open(path)
		require.NoError(t, err)
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		dec := json.NewDecoder(zr)
		for {
			var r map[string]any
			if err := dec.Decode(&r); errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			rows = append(rows, r)
		}
		require.NoError(t, f.Close())
	}
	return files, rows
}

func ids(rows []map[string]any) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = int64(r["id"].(float64))
	}
	return out
}

func (b *testBundle) remaining(t *testing.T, table string) []int64 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT id FROM waybill."+table+" ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestArchiveMovesExactlyTheOldRows(t *testing.T) {
	t.Parallel()
	b := setup(t, 5, 3)

	out, err := b.run(t, Options{}, "--batch", "2")
	require.NoError(t, err)
	require.Contains(t, out, "order_events: archived 5 rows older than 2025-03-12T12:00:00Z into 3 file(s)")
	require.Contains(t, out, "webhook_events: archived 5 rows")

	for _, table := range []string{"order_events", "webhook_events"} {
		files, rows := b.archived(t, table)
		require.Len(t, files, 3, table)
		require.Equal(t, table+"-0000000001.jsonl.gz", filepath.Base(files[0]))
		require.Equal(t, b.old[table], ids(rows), table)
		require.Equal(t, b.recent[table], b.remaining(t, table), table)
	}

	_, events := b.archived(t, "order_events")
	require.Equal(t, "taskCompleted", events[0]["carrier_status"])
	require.Equal(t, float64(b.orderID), events[0]["order_id"])
	require.Equal(t, float64(b.old["webhook_events"][0]), events[0]["webhook_event_id"], "archived before its webhook")
	_, hooks := b.archived(t, "webhook_events")
	body, err := base64.StdEncoding.DecodeString(hooks[0]["body_base64"].(string))
	require.NoError(t, err)
	require.Equal(t, `{"n":0,"raw":"é"}`, string(body), "the body byte for byte")
	require.Equal(t, "task-0:taskCompleted", hooks[0]["event_key"])
	require.NotContains(t, hooks[0], "body")

	// Nothing left to do: no new files, nothing deleted.
	out, err = b.run(t, Options{})
	require.NoError(t, err)
	require.Contains(t, out, "order_events: archived 0 rows")
	require.NotContains(t, out, "interrupted")
	files, _ := b.archived(t, "webhook_events")
	require.Len(t, files, 3)
	require.Equal(t, b.recent["webhook_events"], b.remaining(t, "webhook_events"))
}

// The process dies after a batch file is in place and before its rows are deleted; the rerun
// finishes that batch instead of archiving its rows again.
func TestArchiveResumesAfterCrashWithoutDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, 7, 2)

	crash := errors.New("killed")
	files := 0
	_, err := b.run(t, Options{afterWrite: func(table, path string) error {
		if table == "webhook_events" {
			if files++; files == 2 {
				return crash
			}
		}
		return nil
	}}, "--batch", "2")
	require.ErrorIs(t, err, crash)

	written, rows := b.archived(t, "webhook_events")
	require.Len(t, written, 2)
	require.Equal(t, b.old["webhook_events"][:4], ids(rows))
	require.Subset(t, b.remaining(t, "webhook_events"), b.old["webhook_events"][2:4], "the crashed batch's rows are still there")
	// A crash while writing the next file leaves a temporary file.
	stray := filepath.Join(b.dir, "webhook_events-0000000003.jsonl.gz.tmp")
	require.NoError(t, os.WriteFile(stray, []byte("partial"), 0o600))

	out, err := b.run(t, Options{}, "--batch", "2")
	require.NoError(t, err)
	require.Contains(t, out, "webhook_events: finished an interrupted batch: deleted 2 rows")
	require.Contains(t, out, "webhook_events: archived 3 rows")
	require.NoFileExists(t, stray)

	for _, table := range []string{"order_events", "webhook_events"} {
		_, rows := b.archived(t, table)
		require.Equal(t, b.old[table], ids(rows), "%s: every old row once, in order", table)
		require.Equal(t, b.recent[table], b.remaining(t, table), table)
	}
}

func TestArchiveRunsOneAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, 0)
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	locked, err := dbsqlc.New().ArchiveLockTry(ctx, conn)
	require.NoError(t, err)
	require.True(t, locked)

	_, err = b.run(t, Options{})
	require.ErrorIs(t, err, ErrLocked)
	require.Len(t, b.remaining(t, "webhook_events"), 1)

	require.NoError(t, dbsqlc.New().ArchiveUnlock(ctx, conn))
	_, err = b.run(t, Options{})
	require.NoError(t, err)
	require.Empty(t, b.remaining(t, "webhook_events"))
}

func TestRunCLIRejectsBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		err  string
	}{
		{nil, "archive: --older-than is required"},
		{[]string{"--older-than", "90d"}, "archive: --out is required"},
		{[]string{"--older-than", "90 days", "--out", "x"}, `archive: --older-than: "90 days" is not a positive number`},
		{[]string{"--older-than", "-5d", "--out", "x"}, "is not a positive number"},
		{[]string{"--older-than", "0h", "--out", "x"}, "is not a positive number"},
		{[]string{"--older-than", "90d", "--out", "x", "--batch", "0"}, "archive: --batch must be at least 1"},
		{[]string{"--older-than", "90d", "--out", "x", "extra"}, `archive: unexpected argument "extra"`},
		{[]string{"--days", "3"}, "flag provided but not defined: -days"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		err := RunCLI(context.Background(), tt.args, nil, &out, &errOut)
		require.ErrorContains(t, err, tt.err, tt.args)
	}
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "36h": 36 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		got, err := parseAge(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
}
