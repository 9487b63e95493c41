package alarm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

// deadLetterDetails is the dead-letter alarm's memory: the last dead letter already reported
// (waybill.dead_jobs.id), and what the latest batch was.
type deadLetterDetails struct {
	LastDeadJobID int64       `json:"last_dead_job_id"`
	Kinds         []kindCount `json:"kinds,omitempty"`
	ExternalIDs   []string    `json:"sample_external_ids,omitempty"`
	Carriers      []string    `json:"carriers,omitempty"`
	LastReason    string      `json:"last_reason,omitempty"`
}

type kindCount struct {
	Kind  string `json:"kind"`
	Count int64  `json:"count"`
}

const whereToLookDead = "Where to look: `waybill dead list` (`--kind K`), River UI at /riverui/ (Discarded and " +
	"Cancelled jobs), or psql `SELECT * FROM waybill.dead_letters_open`. Fix the cause, then " +
	"`waybill dead redrive JOB_ID…` or River UI's Retry."

// checkDeadLetters fires on dead letters that arrived since the last check, counts further ones
// into the same episode (a reminder carries them, at most every RemindAfter), and resolves once
// none has arrived for DeadLetterQuietAfter. Dead letters redriven before the check saw them are
// not announced. Ids are the cursor: a dead letter committed out of id order in the instant of a
// check can be missed by the announcement, never by /metrics or `waybill dead list`.
func (c *Checker) checkDeadLetters(ctx context.Context, atx *alarmTx) error {
	prev, err := c.getAlarm(ctx, atx, NameDeadLetters, "")
	if err != nil {
		return err
	}
	var last deadLetterDetails
	if prev != nil {
		if err := json.Unmarshal(prev.Details, &last); err != nil {
			return fmt.Errorf("decode details: %w", err)
		}
	}
	rows, err := c.q.AlarmDeadJobsSince(ctx, atx.tx, last.LastDeadJobID)
	if err != nil {
		return err
	}
	next := last
	var news int64
	if len(rows) > 0 {
		next = deadLetterDetails{LastDeadJobID: last.LastDeadJobID}
	}
	for _, r := range rows {
		next.LastDeadJobID = max(next.LastDeadJobID, r.MaxID)
		if r.Open == 0 {
			continue
		}
		news += r.Open
		next.Kinds = append(next.Kinds, kindCount{Kind: r.Kind, Count: r.Open})
		next.ExternalIDs = append(next.ExternalIDs, r.SampleExternalIds...)
		for _, cr := range r.Carriers {
			if !slices.Contains(next.Carriers, cr) {
				next.Carriers = append(next.Carriers, cr)
			}
		}
		if next.LastReason == "" {
			next.LastReason = r.LastReason
		}
	}
	if news == 0 && len(rows) > 0 {
		// Only redriven ones arrived: move the cursor, keep describing the last batch.
		next.Kinds, next.ExternalIDs, next.Carriers, next.LastReason = last.Kinds, last.ExternalIDs, last.Carriers, last.LastReason
	}
	open, err := c.q.DeadJobCountOpen(ctx, atx.tx)
	if err != nil {
		return err
	}

	holds := news > 0
	if !holds && prev != nil && prev.State == stateFiring && prev.LastSeenAt != nil {
		holds = atx.now.Sub(*prev.LastSeenAt) < c.cfg.DeadLetterQuietAfter
	}
	var prevNotified int64
	if prev != nil {
		prevNotified = prev.NotifiedCount
	}
	return c.apply(ctx, atx, prev, observation{
		name: NameDeadLetters, holds: holds, news: news, counted: true, details: next,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			return deadLetterMessage(kind, row, next, news, row.Count-prevNotified, open, c.cfg)
		},
	})
}

func deadLetterMessage(kind messageKind, row dbsqlc.AlarmSaveParams, d deadLetterDetails, news, sinceLast, open int64, cfg Config) notify.SlackArgs {
	since := clock(*row.FirstFiredAt)
	fields := map[string]string{"Open dead letters": fmt.Sprint(open)}
	switch kind {
	case messageResolved:
		return notify.SlackArgs{
			Title:  "Dead letters: none new for " + ago(cfg.DeadLetterQuietAfter),
			Text:   fmt.Sprintf("%s arrived since %s; %d still open and waiting for someone. %s", plural(row.Count, "dead letter"), since, open, whereToLookDead),
			Fields: fields,
		}
	case messageReminder:
		news = sinceLast
	}
	title := plural(news, "new dead letter")
	if kind == messageReminder {
		title = fmt.Sprintf("Dead letters: %d more (%d since %s)", news, row.Count, since)
	}
	kinds := make([]string, 0, len(d.Kinds))
	for _, k := range d.Kinds {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k.Kind, k.Count))
	}
	fields["Kinds"] = strings.Join(kinds, ", ")
	if len(d.ExternalIDs) > 0 {
		fields["Orders"] = strings.Join(d.ExternalIDs, ", ")
	}
	if len(d.Carriers) > 0 {
		fields["Carriers"] = strings.Join(d.Carriers, ", ")
	}
	text := "Jobs gave up for good and wait in the dead table."
	if d.LastReason != "" {
		text += "\nLatest reason: " + d.LastReason
	}
	return notify.SlackArgs{Title: title, Text: text + "\n" + whereToLookDead, Fields: fields}
}

// plural formats "1 dead letter", "3 dead letters".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
