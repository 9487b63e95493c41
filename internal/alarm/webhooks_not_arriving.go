package alarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

type webhooksNotArrivingDetails struct {
	Changes         int64    `json:"changes_learnt_by_polling"`
	Window          string   `json:"window"`
	SampleOrders    []string `json:"sample_external_ids,omitempty"`
	LastPollChange  string   `json:"last_poll_change_at,omitempty"`
	LastWebhookSeen string   `json:"last_webhook_at,omitempty"`
}

// checkWebhooksNotArriving fires, per carrier, when reconciliation learnt at least
// WebhookGapThreshold status changes within WebhookGapWindow that no webhook had announced (the
// carrier's webhooks are not reaching Waybill). Once firing it holds until webhooks flow again:
// fewer such changes in the window, and a real webhook from the carrier arrived after the last
// change polling had to learn (a quiet period alone does not resolve it).
func (c *Checker) checkWebhooksNotArriving(ctx context.Context, atx *alarmTx) error {
	rows, err := c.q.AlarmPollLearntChanges(ctx, atx.tx, atx.now.Add(-c.cfg.WebhookGapWindow))
	if err != nil {
		return err
	}
	firing, err := c.q.AlarmListFiring(ctx, atx.tx, NameWebhooksNotArriving)
	if err != nil {
		return err
	}
	byCarrier := map[string]dbsqlc.AlarmPollLearntChangesRow{}
	carriers := []string{}
	for _, r := range rows {
		byCarrier[r.Carrier] = r
		carriers = append(carriers, r.Carrier)
	}
	wasFiring := map[string]bool{}
	for _, f := range firing {
		wasFiring[f.Key] = true
		if _, ok := byCarrier[f.Key]; !ok {
			carriers = append(carriers, f.Key)
		}
	}
	var obs []observation
	for _, carrier := range carriers {
		r := byCarrier[carrier]
		d := webhooksNotArrivingDetails{Changes: r.Changes, Window: ago(c.cfg.WebhookGapWindow), SampleOrders: r.SampleExternalIds}
		holds := r.Changes >= c.cfg.WebhookGapThreshold
		if wasFiring[carrier] && !holds {
			lastWebhook, err := c.q.AlarmLastWebhookAt(ctx, atx.tx, carrier)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			lastPoll, err := c.q.AlarmLastPollChangeAt(ctx, atx.tx, carrier)
			if err != nil {
				return err
			}
			holds = !lastWebhook.After(lastPoll)
			if !lastWebhook.IsZero() {
				d.LastWebhookSeen = clock(lastWebhook)
			}
			d.LastPollChange = clock(lastPoll)
		}
		obs = append(obs, webhooksNotArrivingObservation(carrier, holds, &d, c.cfg))
	}
	return c.applyKeyed(ctx, atx, NameWebhooksNotArriving, obs, func(carrier string) observation {
		return webhooksNotArrivingObservation(carrier, false, nil, c.cfg)
	})
}

func webhooksNotArrivingObservation(carrier string, holds bool, d *webhooksNotArrivingDetails, cfg Config) observation {
	var details any
	if d != nil {
		details = d
	}
	return observation{
		name: NameWebhooksNotArriving, key: carrier, holds: holds, details: details,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			fields := map[string]string{"Carrier": carrier}
			if kind == messageResolved {
				return notify.SlackArgs{
					Title: carrier + " webhooks are arriving again",
					Text: fmt.Sprintf("Webhooks from %s reach Waybill again (not arriving from %s to %s). Orders whose changes "+
						"reconciliation learnt meanwhile are up to date; nothing to replay.", carrier, clock(*row.FirstFiredAt), clock(*row.ResolvedAt)),
					Fields: fields,
				}
			}
			title := fmt.Sprintf("%s webhooks are not arriving", carrier)
			if kind == messageReminder {
				title += " (since " + clock(*row.FirstFiredAt) + ")"
			}
			if d != nil && len(d.SampleOrders) > 0 {
				fields["Orders"] = strings.Join(d.SampleOrders, ", ")
			}
			changes := int64(0)
			if d != nil {
				changes = d.Changes
			}
			return notify.SlackArgs{
				Title: title,
				Text: fmt.Sprintf("Reconciliation learnt %d order changes from %s in the last %s that no webhook had announced: "+
					"the carrier's webhooks are not reaching Waybill. Orders still move, but only every "+
					"WAYBILL_RECONCILE_AFTER. Likely causes: the webhook was disabled at the carrier (Onfleet disables one "+
					"after 300 failed deliveries; run `waybill carriers check`, then `waybill carriers register --url "+
					"https://<waybill>/webhooks/%s`); a wrong %s after a rotation (see the bad-signature alarm and "+
					"waybill_webhooks_total{carrier=%q,result=\"bad_signature\"}); or the URL is unreachable from the carrier "+
					"(proxy, DNS, TLS: `curl 'https://<waybill>/webhooks/%s?check=x'` from outside should answer x). "+
					"RUNBOOK: \"Orders stuck at dispatched\".",
					changes, carrier, ago(cfg.WebhookGapWindow), carrier, secretHint(carrier), carrier, carrier),
				Fields: fields,
			}
		},
	}
}

// secretHint names where a carrier's webhook secret is configured.
func secretHint(carrier string) string {
	if carrier == "onfleet" {
		return "ONFLEET_WEBHOOK_SECRET"
	}
	return "webhook secret (WAYBILL_CARRIERS_FILE)"
}

// webhookGapDefaults are Config's defaults for this alarm.
const (
	defaultWebhookGapThreshold = 10
	defaultWebhookGapWindow    = 15 * time.Minute
)
