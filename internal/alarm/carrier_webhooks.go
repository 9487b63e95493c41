package alarm

import (
	"context"
	"fmt"
	"strings"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

type carrierWebhooksDetails struct {
	Missing   []string `json:"missing,omitempty"`
	Disabled  []string `json:"disabled,omitempty"`
	Elsewhere []string `json:"elsewhere,omitempty"`
	CheckedAt string   `json:"checked_at"`
	Error     string   `json:"last_check_error,omitempty"`
}

// checkCarrierWebhooks fires, per carrier, while the last check of its webhook registrations
// (waybill.carrier_webhook_checks: the leader's periodic check, or `waybill carriers check`)
// found a trigger Waybill needs missing, disabled or pointed elsewhere. A check that could not
// be made (the carrier refused or timed out) changes nothing.
func (c *Checker) checkCarrierWebhooks(ctx context.Context, atx *alarmTx) error {
	checks, err := c.q.CarrierWebhookCheckList(ctx, atx.tx)
	if err != nil {
		return err
	}
	var obs []observation
	for _, ch := range checks {
		d := carrierWebhooksDetails{Missing: ch.Missing, Disabled: ch.Disabled, Elsewhere: ch.Elsewhere, CheckedAt: clock(ch.CheckedAt), Error: ch.Error}
		holds := len(ch.Missing)+len(ch.Disabled)+len(ch.Elsewhere) > 0
		if ch.Error != "" {
			prev, err := c.getAlarm(ctx, atx, NameCarrierWebhooks, ch.Carrier)
			if err != nil {
				return err
			}
			holds = prev != nil && prev.State == stateFiring
			if prev != nil && holds {
				obs = append(obs, carrierWebhooksObservation(ch.Carrier, ch.Url, true, nil)) // keep the findings
				continue
			}
		}
		obs = append(obs, carrierWebhooksObservation(ch.Carrier, ch.Url, holds, &d))
	}
	return c.applyKeyed(ctx, atx, NameCarrierWebhooks, obs, func(carrier string) observation {
		return carrierWebhooksObservation(carrier, "", false, nil)
	})
}

func carrierWebhooksObservation(carrier, url string, holds bool, d *carrierWebhooksDetails) observation {
	var details any
	if d != nil {
		details = d
	}
	return observation{
		name: NameCarrierWebhooks, key: carrier, holds: holds, details: details,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			fields := map[string]string{"Carrier": carrier}
			if kind == messageResolved {
				return notify.SlackArgs{
					Title:  carrier + " webhooks are registered again",
					Text:   fmt.Sprintf("Every webhook Waybill needs from %s is registered and enabled again (broken from %s to %s).", carrier, clock(*row.FirstFiredAt), clock(*row.ResolvedAt)),
					Fields: fields,
				}
			}
			var problems []string
			if d != nil {
				if len(d.Missing) > 0 {
					problems = append(problems, "missing: "+strings.Join(d.Missing, ", "))
				}
				if len(d.Disabled) > 0 {
					problems = append(problems, "disabled by the carrier: "+strings.Join(d.Disabled, ", "))
				}
				if len(d.Elsewhere) > 0 {
					problems = append(problems, "pointed at another URL: "+strings.Join(d.Elsewhere, ", "))
				}
			}
			for _, p := range problems {
				k, v, _ := strings.Cut(p, ": ")
				fields[strings.ToUpper(k[:1])+k[1:]] = v
			}
			target := url
			if target == "" {
				target = "https://<waybill>/webhooks/" + carrier
			}
			title := carrier + " webhooks for Waybill are missing or disabled"
			if kind == messageReminder {
				title += " (since " + clock(*row.FirstFiredAt) + ")"
			}
			return notify.SlackArgs{
				Title: title,
				Text: fmt.Sprintf("%s does not send Waybill every event it needs (%s), so orders move only when "+
					"reconciliation asks (every WAYBILL_RECONCILE_AFTER). Fix: `waybill carriers register --url %s` "+
					"(creates the missing webhooks and replaces disabled ones), then `waybill carriers check`.",
					carrier, strings.Join(problems, "; "), target),
				Fields: fields,
			}
		},
	}
}
