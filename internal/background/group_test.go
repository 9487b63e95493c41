package background

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Loops outlive their starter's context and stop last first, each waited for.
func TestGroupStopsLastFirst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var g Group
	var order []string
	for _, name := range []string{"first", "second", "third"} {
		g.Start(ctx, func(ctx context.Context) {
			<-ctx.Done()
			order = append(order, name) // Stop waits for each loop before stopping the next
		})
	}
	cancel()
	g.Stop()
	require.Equal(t, []string{"third", "second", "first"}, order)
}
