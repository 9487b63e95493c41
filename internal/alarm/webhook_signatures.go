package alarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

// signatureFailureRetention: per-minute counts older than this are deleted by the check.
const signatureFailureRetention = 24 * time.Hour

type webhookSignatureDetails struct {
	Failures   int64  `json:"failures"`
	LastMinute string `json:"last_minute,omitempty"`
}

// checkWebhookSignatures fires, per carrier, when at least BadSignatureThreshold webhook
// requests failed signature verification within BadSignatureWindow (counted by
// Recorder.WebhookBadSignature), and resolves once a whole window passes without one.
func (c *Checker) checkWebhookSignatures(ctx context.Context, atx *alarmTx) error {
	since := atx.now.Add(-c.cfg.BadSignatureWindow).Truncate(time.Minute)
	counts, err := c.q.WebhookSignatureFailuresSince(ctx, atx.tx, since)
	if err != nil {
		return err
	}
	if _, err := c.q.WebhookSignatureFailuresPrune(ctx, atx.tx, atx.now.Add(-signatureFailureRetention)); err != nil {
		return err
	}
	var obs []observation
	for _, n := range counts {
		prev, err := c.getAlarm(ctx, atx, NameWebhookSignatures, n.Carrier)
		if err != nil {
			return err
		}
		// Once firing, any failure in the window keeps it firing: a trickle after a burst is
		// not "resolved".
		holds := n.Failures >= c.cfg.BadSignatureThreshold || prev != nil && prev.State == stateFiring && n.Failures > 0
		d := webhookSignatureDetails{Failures: n.Failures, LastMinute: clock(n.LastMinute)}
		obs = append(obs, c.webhookSignatureObservation(n.Carrier, holds, d))
	}
	return c.applyKeyed(ctx, atx, NameWebhookSignatures, obs, func(carrier string) observation {
		return c.webhookSignatureObservation(carrier, false, webhookSignatureDetails{})
	})
}

func (c *Checker) webhookSignatureObservation(carrier string, holds bool, d webhookSignatureDetails) observation {
	window := ago(c.cfg.BadSignatureWindow)
	return observation{
		name: NameWebhookSignatures, key: carrier, holds: holds, details: d,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			fields := map[string]string{"Carrier": carrier}
			if kind == messageResolved {
				return notify.SlackArgs{
					Title:  carrier + " webhooks: no bad signatures for " + window,
					Text:   fmt.Sprintf("Bad signatures from %s to %s.", clock(*row.FirstFiredAt), clock(*row.ResolvedAt)),
					Fields: fields,
				}
			}
			title := fmt.Sprintf("%s webhooks: %d with a bad signature in %s", carrier, d.Failures, window)
			if kind == messageReminder {
				title += " (since " + clock(*row.FirstFiredAt) + ")"
			}
			return notify.SlackArgs{
				Title: title,
				Text: strings.Join([]string{
					"Waybill refused them and stored nothing: if they are genuine, order updates are missed until this is fixed (the carrier retries a while, then gives up).",
					"Either the carrier's webhook secret changed (set " + webhookSecretHint(carrier) + "; during a rotation " +
						"it takes the old and the new secret, comma-separated) or someone is sending forged requests.",
					fmt.Sprintf("Metric: waybill_webhooks_total{carrier=%q,result=\"bad_signature\"}.", carrier),
				}, "\n"),
				Fields: fields,
			}
		},
	}
}

func webhookSecretHint(carrier string) string {
	if carrier == "onfleet" {
		return "ONFLEET_WEBHOOK_SECRET"
	}
	return "the carrier's webhook secret (WAYBILL_CARRIERS_FILE)"
}
