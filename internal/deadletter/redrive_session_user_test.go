package deadletter

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// A redrive records the database login that made it beside the free-text `by`, which anyone
// allowed to redrive can set to anything.
func TestRedriveRecordsSessionUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)

	// An ops login of its own (not SET ROLE: session_user is the login).
	login, opsURL := dbtest.NewLogin(t, dbURL, "waybill_ops")
	ops := dbtest.Connect(t, opsURL)

	dead := func() int64 {
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, attempt)
			VALUES ('{}', 'noop', 1, 'default', 'running', 1) RETURNING id`).Scan(&id))
		_, err := pool.Exec(ctx, `UPDATE waybill.river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, id)
		require.NoError(t, err)
		return id
	}
	redriven := func(jobID int64) (by, via, sessionUser string) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT redriven_by, redriven_via, redriven_session_user FROM waybill.dead_jobs WHERE job_id = $1`, jobID).
			Scan(&by, &via, &sessionUser))
		return by, via, sessionUser
	}

	// The CLI's way, as the ops login, claiming to be someone else.
	viaCLI := dead()
	res, err := Redrive(ctx, ops, []int64{viaCLI}, RedriveOpts{By: "the-ceo"})
	require.NoError(t, err)
	require.Equal(t, OutcomeRedriven, res[0].Outcome)
	by, via, sessionUser := redriven(viaCLI)
	require.Equal(t, []string{"the-ceo", "cli", login}, []string{by, via, sessionUser})

	// Plain SQL from psql.
	viaSQL := dead()
	_, err = ops.Exec(ctx, `SELECT * FROM waybill.redrive(ARRAY[$1::bigint], 'nobody')`, viaSQL)
	require.NoError(t, err)
	by, via, sessionUser = redriven(viaSQL)
	require.Equal(t, []string{"nobody", "sql", login}, []string{by, via, sessionUser})

	// River UI's retry runs as the service's login.
	viaUI := dead()
	_, err = pool.Exec(ctx, `UPDATE waybill.river_job SET state = 'available', finalized_at = NULL WHERE id = $1`, viaUI)
	require.NoError(t, err)
	var serviceLogin string
	require.NoError(t, pool.QueryRow(ctx, `SELECT session_user`).Scan(&serviceLogin))
	by, via, sessionUser = redriven(viaUI)
	require.Equal(t, []string{serviceLogin, "river_ui", serviceLogin}, []string{by, via, sessionUser})
}
