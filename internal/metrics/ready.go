package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// readyTimeout bounds the Postgres check: a load balancer asking /readyz must get an answer
// before its own timeout, and a Postgres this slow is as good as down.
const readyTimeout = 2 * time.Second

// NotReadyError says why the service cannot do its work. Its Error is the detail, for the log:
// a driver's error names the database's host, user and database. PublicReason is what anyone
// asking /readyz may read: the failing dependencies only.
type NotReadyError struct {
	Problems []NotReadyProblem
}

// NotReadyProblem is one failing dependency.
type NotReadyProblem struct {
	Reason string // public: "database unreachable", "river not running"
	Err    error  // detail
}

func (e *NotReadyError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Err.Error()
	}
	return strings.Join(parts, "; ")
}

// PublicReason names the failing dependencies, nothing about them.
func (e *NotReadyError) PublicReason() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Reason
	}
	return strings.Join(parts, "; ")
}

// Unwrap gives errors.Is and errors.As the details.
func (e *NotReadyError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p.Err
	}
	return errs
}

// Ready reports why the service cannot do its work, nil when it can: Postgres answers a query
// and River runs (riverRunning returns nil; see RiverRunning). A failure is a *NotReadyError.
func Ready(ctx context.Context, pool *pgxpool.Pool, riverRunning func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var problems []NotReadyProblem
	if _, err := dbsqlc.New().MetricsPing(ctx, pool); err != nil {
		problems = append(problems, NotReadyProblem{Reason: "database unreachable", Err: fmt.Errorf("postgres: %w", err)})
	}
	if riverRunning != nil {
		if err := riverRunning(); err != nil {
			problems = append(problems, NotReadyProblem{Reason: "river not running", Err: fmt.Errorf("river: %w", err)})
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &NotReadyError{Problems: problems}
}

// RiverRunning adapts a River client's Stopped method (pass client.Stopped) to Ready: an error
// before the client started and after it stopped. Call it only once Start has returned.
func RiverRunning(stopped func() <-chan struct{}) func() error {
	return func() error {
		ch := stopped()
		if ch == nil {
			return errors.New("client not started")
		}
		select {
		case <-ch:
			return errors.New("client stopped")
		default:
			return nil
		}
	}
}
