package alarm

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

type stuckBatchDetails struct {
	Batches   int64   `json:"batches"`
	Orders    int64   `json:"orders"`
	OldestAge string  `json:"oldest_age"`
	BatchIDs  []int64 `json:"sample_batch_ids"`
}

// checkStuckBatches fires, per carrier, while a dispatch batch stays unsettled longer than
// BatchStuckAfter: the carrier's async job does not finish, or neither its answer nor a lookup
// gets through. Dispatch settles such a batch by a metadata lookup as soon as it can; until
// then its orders wait (they are never sent twice).
func (c *Checker) checkStuckBatches(ctx context.Context, atx *alarmTx) error {
	rows, err := c.q.AlarmStuckBatches(ctx, atx.tx, atx.now.Add(-c.cfg.BatchStuckAfter))
	if err != nil {
		return err
	}
	var obs []observation
	for _, r := range rows {
		d := stuckBatchDetails{Batches: r.Batches, Orders: r.Orders, OldestAge: ago(atx.now.Sub(r.OldestCreatedAt)), BatchIDs: r.SampleBatchIds}
		obs = append(obs, stuckBatchObservation(r.Carrier, true, &d, c.cfg))
	}
	return c.applyKeyed(ctx, atx, NameStuckBatches, obs, func(carrier string) observation {
		return stuckBatchObservation(carrier, false, nil, c.cfg)
	})
}

func stuckBatchObservation(carrier string, holds bool, d *stuckBatchDetails, cfg Config) observation {
	var details any
	if d != nil {
		details = d
	}
	return observation{
		name: NameStuckBatches, key: carrier, holds: holds, details: details,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			fields := map[string]string{"Carrier": carrier}
			if kind == messageResolved {
				return notify.SlackArgs{
					Title:  carrier + " dispatch batches settled",
					Text:   fmt.Sprintf("Every batch sent to %s is settled again (stuck from %s to %s).", carrier, clock(*row.FirstFiredAt), clock(*row.ResolvedAt)),
					Fields: fields,
				}
			}
			title := fmt.Sprintf("%s dispatch batches unsettled for more than %s", carrier, ago(cfg.BatchStuckAfter))
			if kind == messageReminder {
				title += " (since " + clock(*row.FirstFiredAt) + ")"
			}
			ids := make([]string, len(d.BatchIDs))
			for i, id := range d.BatchIDs {
				ids[i] = strconv.FormatInt(id, 10)
			}
			fields["Batches"] = strings.Join(ids, ", ")
			return notify.SlackArgs{
				Title: title,
				Text: fmt.Sprintf("%d batches (%d orders) sent to %s have no outcome yet, the oldest for %s. "+
					"Their orders are not sent again until each batch is settled: Waybill polls the carrier's job and "+
					"then looks its tasks up by the batch id. Check the carrier's status page and the "+
					"waybill_carrier_requests_total{carrier=%q} metric. SQL: `SELECT * FROM waybill.dispatch_batches "+
					"WHERE state <> 'finished' ORDER BY id`.", d.Batches, d.Orders, carrier, d.OldestAge, carrier),
				Fields: fields,
			}
		},
	}
}
