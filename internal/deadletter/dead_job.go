package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// DeadJob is one death of a River job. A job redriven and dead again has one per death.
type DeadJob struct {
	ID         int64  `json:"id"`
	JobID      int64  `json:"job_id"`
	Kind       string `json:"kind"`
	Queue      string `json:"queue"`
	State      string `json:"state"` // discarded or cancelled
	OrderID    int64  `json:"order_id,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	Carrier    string `json:"carrier,omitempty"`
	Attempts   int    `json:"attempts"`
	// Reason is one line: the last error, or who cancelled the job.
	Reason      string                   `json:"reason"`
	Errors      []rivertype.AttemptError `json:"errors"`
	DiscardedAt time.Time                `json:"discarded_at"`
}

// ListParams filters List. Zero values filter nothing.
type ListParams struct {
	Kind  string
	Since time.Time // dead at or after
	Limit int       // default 500
}

const defaultListLimit = 500

// List returns open dead letters (not redriven yet), newest first.
func List(ctx context.Context, db dbsqlc.DBTX, p ListParams) ([]DeadJob, error) {
	params := dbsqlc.DeadJobListOpenParams{MaxRows: int32(defaultListLimit)}
	if p.Kind != "" {
		params.Kind = &p.Kind
	}
	if !p.Since.IsZero() {
		params.Since = &p.Since
	}
	if p.Limit > 0 {
		params.MaxRows = int32(min(p.Limit, 1<<30))
	}
	rows, err := dbsqlc.New().DeadJobListOpen(ctx, db, params)
	if err != nil {
		return nil, fmt.Errorf("list dead jobs: %w", err)
	}
	jobs := make([]DeadJob, 0, len(rows))
	for _, r := range rows {
		j := DeadJob{
			ID: r.ID, JobID: r.JobID, Kind: r.Kind, Queue: r.Queue, State: r.State,
			OrderID: r.OrderID.Int64, Attempts: int(r.Attempts), Reason: r.Reason, DiscardedAt: r.DiscardedAt,
		}
		if r.ExternalID != nil {
			j.ExternalID = *r.ExternalID
		}
		if r.Carrier != nil {
			j.Carrier = *r.Carrier
		}
		if err := json.Unmarshal(r.Errors, &j.Errors); err != nil {
			return nil, fmt.Errorf("dead job %d: decode errors: %w", r.JobID, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// OpenJobIDs returns the job ids of every open dead letter, of one kind if kind is set.
func OpenJobIDs(ctx context.Context, db dbsqlc.DBTX, kind string) ([]int64, error) {
	var k *string
	if kind != "" {
		k = &kind
	}
	ids, err := dbsqlc.New().DeadJobOpenJobIDs(ctx, db, k)
	if err != nil {
		return nil, fmt.Errorf("list dead job ids: %w", err)
	}
	return ids, nil
}

// Outcome is what waybill.redrive did with one job id.
type Outcome string

const (
	OutcomeRedriven   Outcome = "redriven"   // available again
	OutcomeReenqueued Outcome = "reenqueued" // River had deleted it; re-inserted, available
	OutcomeNotDead    Outcome = "not_dead"   // exists but is not discarded or cancelled (Detail: its state)
	OutcomeConflict   Outcome = "conflict"   // another active job has the same unique key
	OutcomeUnknown    Outcome = "unknown"    // no such job and no open dead letter
)

// RedriveResult is one job id's outcome.
type RedriveResult struct {
	JobID      int64   `json:"job_id"`
	Kind       string  `json:"kind,omitempty"`
	OrderID    int64   `json:"order_id,omitempty"`
	ExternalID string  `json:"external_id,omitempty"`
	Outcome    Outcome `json:"outcome"`
	Detail     string  `json:"detail,omitempty"`
}

// OK reports whether the job is on its way again.
func (r RedriveResult) OK() bool {
	return r.Outcome == OutcomeRedriven || r.Outcome == OutcomeReenqueued
}

// TxBeginner is a pool, a connection or a transaction (which begins a savepoint).
type TxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// RedriveOpts says who redrives, and whether for real.
type RedriveOpts struct {
	// By is recorded as dead_jobs.redriven_by; required. It is the caller's word (the CLI: the
	// OS user); the database login that redrives is recorded beside it, as
	// dead_jobs.redriven_session_user, whatever By says.
	By string
	// DryRun runs the redrive and rolls it back: the outcomes are exactly what a redrive would
	// do at this moment, and nothing changes.
	DryRun bool
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// Redrive puts dead jobs back to available through waybill.redrive, recording the redrive as
// made via the CLI. One result per distinct id, in id order.
func Redrive(ctx context.Context, db TxBeginner, jobIDs []int64, opts RedriveOpts) ([]RedriveResult, error) {
	if opts.By == "" {
		return nil, errors.New("redrive: say who is redriving")
	}
	var rows []dbsqlc.DeadJobRedriveRow
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		if err := q.DeadJobRedriveVia(ctx, tx, "cli"); err != nil {
			return err
		}
		var err error
		rows, err = q.DeadJobRedrive(ctx, tx, dbsqlc.DeadJobRedriveParams{JobIds: jobIDs, RedrivenBy: opts.By})
		if err == nil && opts.DryRun {
			return errDryRun
		}
		return err
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, fmt.Errorf("redrive %d jobs: %w", len(jobIDs), err)
	}
	results := make([]RedriveResult, len(rows))
	for i, r := range rows {
		results[i] = RedriveResult{
			JobID: r.JobID, Kind: r.Kind, OrderID: r.OrderID, ExternalID: r.ExternalID,
			Outcome: Outcome(r.Outcome), Detail: r.Detail,
		}
	}
	return results, nil
}
