package migrate_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/dispatch"
	"github.com/waybill/waybill/internal/migrate"
	"github.com/waybill/waybill/internal/webhook"
)

// riverSchemaVersion is the River schema version Waybill's SQL that writes River's tables was
// checked against (see jobRow). A River upgrade that moves it must re-check every such path:
// the outbox trigger (db/migrations/00002_orders.sql), webhook intake (WebhookEventInsertMany in
// db/queries/webhook_events.sql), reconciliation's synthetic events (ReconcileEventInsertMany in
// db/queries/reconcile.sql), and the statements that delete finished jobs
// (OrderMarkDispatchedMany, WebhookJobsDelete…), then move this constant.
const riverSchemaVersion = 8

// jobRow is what a job row holds that River reads or that River UI shows.
type jobRow struct {
	Args         map[string]any
	Kind         string
	MaxAttempts  int16
	Queue        string
	State        string
	Priority     int16
	Attempt      int16
	Metadata     map[string]any
	Tags         []string
	UniqueKey    []byte
	UniqueStates *uint8
}

func readJob(t *testing.T, pool *pgxpool.Pool, id int64) jobRow {
	t.Helper()
	var (
		r            jobRow
		args, meta   []byte
		uniqueStates *string
	)
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT args, kind, max_attempts, queue, state::text, priority, attempt, metadata, tags, unique_key, unique_states::text
		FROM waybill.river_job WHERE id = $1`, id).
		Scan(&args, &r.Kind, &r.MaxAttempts, &r.Queue, &r.State, &r.Priority, &r.Attempt, &meta, &r.Tags, &r.UniqueKey, &uniqueStates))
	require.NoError(t, json.Unmarshal(args, &r.Args))
	require.NoError(t, json.Unmarshal(meta, &r.Metadata))
	if uniqueStates != nil {
		var v uint8
		for _, c := range *uniqueStates {
			v = v<<1 | uint8(c-'0')
		}
		r.UniqueStates = &v
	}
	return r
}

// insertWithRiver inserts args the way River's client does, and returns the row.
func insertWithRiver(t *testing.T, pool *pgxpool.Pool, args river.JobArgs) jobRow {
	t.Helper()
	ctx := context.Background()
	client := dbtest.NewRiver(t, pool, nil)
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		res, err := client.InsertTx(ctx, tx, args, nil)
		if err == nil {
			id = res.Job.ID
		}
		return err
	}))
	return readJob(t, pool, id)
}

// Waybill writes some of River's job rows in SQL, for speed (a trigger and a set-based insert
// cost a fraction of River's client per row). Each such path must write exactly what River's
// InsertTx writes for the same args, or River (and River UI) would misread the jobs.
func TestRiverJobSQLMatchesRiversInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)

	t.Run("the River schema is the one this contract was checked against", func(t *testing.T) {
		migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: migrate.Schema})
		require.NoError(t, err)
		all := migrator.AllVersions()
		require.Equal(t, riverSchemaVersion, all[len(all)-1].Version,
			"River's schema moved: re-check Waybill's SQL that writes river_job (see riverSchemaVersion), then update it")
		existing, err := migrator.ExistingVersions(ctx)
		require.NoError(t, err)
		require.Equal(t, riverSchemaVersion, existing[len(existing)-1].Version, "the migrated database has River's schema too")
	})

	t.Run("outbox trigger", func(t *testing.T) {
		orderID, jobID := dbtest.InsertOrder(t, pool, dbtest.Order{ExternalID: "SO-CONTRACT"})
		got := readJob(t, pool, jobID)
		want := insertWithRiver(t, pool, dispatch.Args{OrderID: orderID, ExternalID: "SO-CONTRACT", Carrier: "onfleet"})
		// The one deliberate difference: the trigger tags each job with its carrier, for River
		// UI's filter.
		require.Equal(t, []string{"onfleet"}, got.Tags)
		got.Tags = want.Tags
		require.Equal(t, want, got)
	})

	// translateJob is the translate job SQL wrote for a stored event, and what River writes.
	translateJob := func(t *testing.T, eventID int64) (got, want jobRow) {
		t.Helper()
		var jobID int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM waybill.river_job WHERE kind = 'webhook_translate' AND args->>'webhook_event_id' = $1`, strconv.FormatInt(eventID, 10)).Scan(&jobID))
		return readJob(t, pool, jobID), insertWithRiver(t, pool, webhook.TranslateArgs{WebhookEventID: eventID, Carrier: "onfleet"})
	}

	t.Run("webhook intake", func(t *testing.T) {
		rows, err := dbsqlc.New().WebhookEventInsertMany(ctx, pool, dbsqlc.WebhookEventInsertManyParams{
			Carriers: []string{"onfleet"}, EventKeys: []string{"contract-1"}, Bodies: [][]byte{[]byte(`{}`)},
			Headers: [][]byte{[]byte(`{}`)}, SourceAddrs: []string{"127.0.0.1"},
		})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		got, want := translateJob(t, rows[0].ID)
		require.Equal(t, want, got)
	})

	t.Run("reconciliation", func(t *testing.T) {
		rows, err := dbsqlc.New().ReconcileEventInsertMany(ctx, pool, dbsqlc.ReconcileEventInsertManyParams{
			Carriers: []string{"onfleet"}, EventKeys: []string{"poll:contract:taskStarted:1"}, Bodies: [][]byte{[]byte(`{}`)},
		})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		got, want := translateJob(t, rows[0].ID)
		// The one deliberate difference: reconciliation's jobs are tagged, for River UI's filter.
		require.Equal(t, []string{"reconcile"}, got.Tags)
		got.Tags = want.Tags
		require.Equal(t, want, got)
	})
}
