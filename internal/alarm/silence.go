package alarm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/dbsqlc"
	"github.com/waybill/waybill/internal/notify"
)

// silenceMaxOrders bounds one check's email; further silent orders go in the next check's.
const silenceMaxOrders = 200

// checkSilence emails logistics about orders the carrier accepted but has said nothing about for
// SilenceAlertAfter: each order once per silence (a firing alarm row per order, key = order id),
// all the orders found by one check in one email. A silence ends, without a message, when the
// carrier is heard from or the order reaches a final status; the order can then be reported
// again if it goes quiet again.
func (c *Checker) checkSilence(ctx context.Context, atx *alarmTx) error {
	before := atx.now.Add(-c.cfg.SilenceAlertAfter)
	ended, err := c.q.AlarmSilenceEnded(ctx, atx.tx, before)
	if err != nil {
		return err
	}
	if len(ended) > 0 {
		if err := c.q.AlarmResolveMany(ctx, atx.tx, dbsqlc.AlarmResolveManyParams{Name: NameSilence, Keys: ended, At: atx.now}); err != nil {
			return err
		}
	}
	silent, err := c.q.AlarmSilentOrders(ctx, atx.tx, dbsqlc.AlarmSilentOrdersParams{Before: before, MaxOrders: silenceMaxOrders})
	if err != nil || len(silent) == 0 {
		return err
	}
	keys := make([]string, len(silent))
	for i, o := range silent {
		keys[i] = strconv.FormatInt(o.ID, 10)
	}
	if err := c.q.AlarmFireMany(ctx, atx.tx, dbsqlc.AlarmFireManyParams{Name: NameSilence, Keys: keys, At: atx.now}); err != nil {
		return err
	}
	if _, err := atx.client.InsertTx(ctx, atx.tx, silenceEmail(silent, c.cfg.SilenceAlertAfter, atx.now), tagged(NameSilence)); err != nil {
		return fmt.Errorf("enqueue email: %w", err)
	}
	atx.sent = append(atx.sent, sentMessage{name: NameSilence, key: strings.Join(keys, ","), state: stateFiring})
	return nil
}

func silenceEmail(silent []dbsqlc.AlarmSilentOrdersRow, after time.Duration, now time.Time) notify.EmailArgs {
	var b strings.Builder
	fmt.Fprintf(&b, "The carrier accepted these orders but has sent no news about them for more than %s.\n"+
		"Please check with the carrier that they are on their way.\n\n", ago(after))
	ids := make([]string, len(silent))
	for i, o := range silent {
		ids[i] = "'" + strings.ReplaceAll(o.ExternalID, "'", "''") + "'"
		fmt.Fprintf(&b, "%s (%s, %s", o.ExternalID, o.Carrier, strings.ReplaceAll(o.Status, "_", " "))
		if o.DispatchedAt != nil {
			fmt.Fprintf(&b, ", accepted %s", clock(*o.DispatchedAt))
		}
		b.WriteString(")\n")
		if o.TrackingUrl != nil && *o.TrackingUrl != "" {
			fmt.Fprintf(&b, "  Tracking: %s\n", *o.TrackingUrl)
		}
	}
	fmt.Fprintf(&b, "\nWaybill reports each order once; it writes again only if an order goes quiet again after new news.\n"+
		"SQL: SELECT * FROM waybill.orders WHERE external_id IN (%s);\n", strings.Join(ids, ", "))

	e := notify.EmailArgs{
		Subject:    fmt.Sprintf("[Waybill] %d orders with no carrier news for %s", len(silent), ago(after)),
		Body:       b.String(),
		OccurredAt: now,
	}
	if len(silent) == 1 {
		o := silent[0]
		e.Subject = fmt.Sprintf("[Waybill] No carrier news for order %s in %s", o.ExternalID, ago(after))
		e.OrderID, e.ExternalID, e.Carrier, e.Status = o.ID, o.ExternalID, o.Carrier, o.Status
		if o.TrackingUrl != nil {
			e.TrackingURL = *o.TrackingUrl
		}
	}
	return e
}
