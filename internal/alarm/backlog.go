package alarm

import (
	"context"
	"fmt"
	"strings"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

type backlogDetails struct {
	LatePendingOrders int64          `json:"late_pending_orders"`
	OldestPendingAge  string         `json:"oldest_pending_age,omitempty"`
	ExternalIDs       []string       `json:"sample_external_ids,omitempty"`
	LateJobs          []queueBacklog `json:"late_jobs,omitempty"`
}

type queueBacklog struct {
	Queue     string `json:"queue"`
	Jobs      int64  `json:"jobs"`
	OldestAge string `json:"oldest_age"`
}

// checkBacklog fires while an order has been pending, or a job available, for longer than
// BacklogAlertAfter: the outbox or a queue is not draining (the seed's silent failure).
func (c *Checker) checkBacklog(ctx context.Context, atx *alarmTx) error {
	before := atx.now.Add(-c.cfg.BacklogAlertAfter)
	pending, err := c.q.AlarmPendingOrdersLate(ctx, atx.tx, before)
	if err != nil {
		return err
	}
	jobs, err := c.q.AlarmAvailableJobsLate(ctx, atx.tx, before)
	if err != nil {
		return err
	}
	d := backlogDetails{LatePendingOrders: pending.Late, ExternalIDs: pending.SampleExternalIds}
	if pending.Late > 0 {
		d.OldestPendingAge = ago(atx.now.Sub(pending.OldestCreatedAt))
	}
	for _, j := range jobs {
		d.LateJobs = append(d.LateJobs, queueBacklog{Queue: j.Queue, Jobs: j.Late, OldestAge: ago(atx.now.Sub(j.OldestScheduledAt))})
	}
	prev, err := c.getAlarm(ctx, atx, NameBacklog, "")
	if err != nil {
		return err
	}
	return c.apply(ctx, atx, prev, observation{
		name: NameBacklog, holds: pending.Late > 0 || len(jobs) > 0, details: d,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			return backlogMessage(kind, row, d, c.cfg)
		},
	})
}

func backlogMessage(kind messageKind, row dbsqlc.AlarmSaveParams, d backlogDetails, cfg Config) notify.SlackArgs {
	limit := ago(cfg.BacklogAlertAfter)
	if kind == messageResolved {
		return notify.SlackArgs{
			Title: "Backlog cleared",
			Text:  fmt.Sprintf("Nothing has waited longer than %s since %s (backlog began %s).", limit, clock(*row.ResolvedAt), clock(*row.FirstFiredAt)),
		}
	}
	var lines []string
	fields := map[string]string{}
	if d.LatePendingOrders > 0 {
		lines = append(lines, fmt.Sprintf("%s pending for more than %s, the oldest for %s: they are not reaching the carrier.",
			plural(d.LatePendingOrders, "order"), limit, d.OldestPendingAge))
		fields["Oldest pending orders"] = strings.Join(d.ExternalIDs, ", ")
	}
	for _, q := range d.LateJobs {
		lines = append(lines, fmt.Sprintf("Queue %s: %s available for more than %s, the oldest for %s.", q.Queue, plural(q.Jobs, "job"), limit, q.OldestAge))
	}
	title := "Backlog: work waiting longer than " + limit
	if kind == messageReminder {
		title += fmt.Sprintf(" (since %s)", clock(*row.FirstFiredAt))
	}
	lines = append(lines, "Check that `waybill serve` runs and is ready (/readyz), the waybill_jobs and "+
		"waybill_oldest_available_job_age_seconds metrics, and River UI at /riverui/. "+
		"SQL: `SELECT queue, state, count(*) FROM waybill.river_job GROUP BY 1, 2`.")
	return notify.SlackArgs{Title: title, Text: strings.Join(lines, "\n"), Fields: fields}
}
