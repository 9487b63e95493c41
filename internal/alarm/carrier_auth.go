package alarm

import (
	"context"
	"fmt"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

type carrierAuthDetails struct {
	LastAuthFailureAt string `json:"last_auth_failure_at,omitempty"`
	LastSuccessAt     string `json:"last_success_at,omitempty"`
}

// checkCarrierAuth fires, per carrier, while the carrier's last refusal of our credentials
// (401/403, recorded by Recorder.CarrierAuth) is newer than its last accepted request.
func (c *Checker) checkCarrierAuth(ctx context.Context, atx *alarmTx) error {
	health, err := c.q.CarrierHealthList(ctx, atx.tx)
	if err != nil {
		return err
	}
	var obs []observation
	for _, h := range health {
		refused := h.LastAuthFailureAt != nil && (h.LastSuccessAt == nil || h.LastAuthFailureAt.After(*h.LastSuccessAt))
		d := carrierAuthDetails{}
		if h.LastAuthFailureAt != nil {
			d.LastAuthFailureAt = clock(*h.LastAuthFailureAt)
		}
		if h.LastSuccessAt != nil {
			d.LastSuccessAt = clock(*h.LastSuccessAt)
		}
		obs = append(obs, carrierAuthObservation(h.Carrier, refused, d))
	}
	return c.applyKeyed(ctx, atx, NameCarrierAuth, obs, func(carrier string) observation {
		return carrierAuthObservation(carrier, false, nil)
	})
}

func carrierAuthObservation(carrier string, refused bool, d any) observation {
	return observation{
		name: NameCarrierAuth, key: carrier, holds: refused, details: d,
		message: func(kind messageKind, row dbsqlc.AlarmSaveParams) notify.SlackArgs {
			fields := map[string]string{"Carrier": carrier}
			if kind == messageResolved {
				return notify.SlackArgs{
					Title:  carrier + " accepts Waybill's credentials again",
					Text:   fmt.Sprintf("Refused from %s to %s. Orders that waited are being dispatched.", clock(*row.FirstFiredAt), clock(*row.ResolvedAt)),
					Fields: fields,
				}
			}
			title := carrier + " refuses Waybill's credentials"
			if kind == messageReminder {
				title += " (since " + clock(*row.FirstFiredAt) + ")"
			}
			return notify.SlackArgs{
				Title: title,
				Text: fmt.Sprintf("%s answers 401/403 to Waybill. Orders for %s stay pending and are retried every "+
					"minute, none is lost. Fix %s and restart `waybill serve`; the metric is "+
					"waybill_carrier_requests_total{carrier=%q,outcome=\"unauthorized\"}.",
					carrier, carrier, credentialHint(carrier), carrier),
				Fields: fields,
			}
		},
	}
}

// credentialHint names where a carrier's credentials are configured.
func credentialHint(carrier string) string {
	if carrier == "onfleet" {
		return "ONFLEET_API_KEY"
	}
	return "the carrier's credentials (WAYBILL_CARRIERS_FILE)"
}
