package metrics

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestReady(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	running := func() error { return nil }

	require.NoError(t, Ready(ctx, pool, running))

	err := Ready(ctx, pool, func() error { return errors.New("client stopped") })
	require.ErrorContains(t, err, "river: client stopped")

	closed, err := pgxpool.New(ctx, pool.Config().ConnString())
	require.NoError(t, err)
	closed.Close()
	err = Ready(ctx, closed, running)
	require.ErrorContains(t, err, "postgres:")
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func TestRiverRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	// Started and stopped by hand, not by dbtest.StartRiver: that is what is under test.
	client := dbtest.NewRiver(t, pool, &river.Config{
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}}, Workers: workers,
	})
	running := RiverRunning(client.Stopped)

	require.ErrorContains(t, running(), "not started")
	require.NoError(t, client.Start(ctx))
	require.NoError(t, running())
	require.NoError(t, client.Stop(ctx))
	require.ErrorContains(t, running(), "stopped")
}
