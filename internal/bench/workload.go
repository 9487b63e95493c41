package bench

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// orderPayload is a realistic canonical order payload (about 450 bytes), varied by i so rows
// differ the way real ones do.
func orderPayload(i int, now time.Time) []byte {
	after := now.Add(2 * time.Hour).Truncate(time.Hour).UTC()
	return fmt.Appendf(nil, `{"recipient":{"name":"Customer %d","phone":"+1415555%04d","email":"customer%d@example.com"},`+
		`"address":{"line1":"%d Market Street","line2":"Apt %d","city":"San Francisco","region":"CA","postal_code":"941%02d","country":"US"},`+
		`"notes":"Leave at the front desk if nobody answers. Bench order %d.",`+
		`"window":{"after":"%s","before":"%s"},`+
		`"items":[{"sku":"SKU-%05d","quantity":%d},{"sku":"SKU-GIFTWRAP","quantity":1}]}`,
		i, i%10000, i, 1+i%2000, 1+i%300, i%100, i,
		after.Format(time.RFC3339), after.Add(4*time.Hour).Format(time.RFC3339),
		i%50000, 1+i%3)
}

// onfleetTrigger is one Onfleet webhook trigger the bench sends.
type onfleetTrigger struct {
	ID    int
	Name  string
	State int // the task's state after it
}

// lifecycle is the order in which a task's events are sent: each moves the order forward, or
// (taskEta) is recorded without moving it.
var lifecycle = []onfleetTrigger{
	{9, "taskAssigned", 1},
	{0, "taskStarted", 2},
	{1, "taskEta", 2},
	{3, "taskCompleted", 3},
}

// webhookOrder is a dispatched order the bench sends events about.
type webhookOrder struct {
	OrderID     int64
	ExternalID  string
	CarrierRef  string
	TrackingURL string
}

// webhookEventFor is event e of a run over len(targets) orders: order e mod n, lifecycle step
// e div n, so an order's events are spread over the run and arrive in lifecycle order. Every
// event is distinct: (taskId, triggerId, time) never repeats because time grows with e.
func webhookEventFor(e int, targets []webhookOrder, baseMs int64) (body []byte, err error) {
	n := len(targets)
	o := targets[e%n]
	step := e / n
	trig := lifecycle[step%len(lifecycle)]
	return onfleetEventBody(o, trig, baseMs+int64(e))
}

// onfleetEventBody renders an Onfleet webhook with the shape of Onfleet's documented payloads
// (internal/carrier/onfleet/onfleettest/testdata): the full task object under data.task, carrying the
// metadata Waybill stored when it created the task.
func onfleetEventBody(o webhookOrder, trig onfleetTrigger, timeMs int64) ([]byte, error) {
	shortID := o.CarrierRef
	if len(shortID) > 8 {
		shortID = shortID[len(shortID)-8:]
	}
	worker := "COwfwH~Zogm1LXIZYbPlLAyw"
	completion := map[string]any{
		"actions": []any{}, "events": []any{}, "failureNotes": "", "failureReason": "NONE",
		"firstLocation": []any{}, "lastLocation": []any{}, "notes": "", "time": nil,
		"unavailableAttachments": []any{},
	}
	if trig.State == 3 {
		completion["success"] = true
		completion["successNotes"] = ""
		completion["time"] = timeMs
		completion["events"] = []any{map[string]any{"name": "start", "time": timeMs - 600000}}
	}
	var eta any
	if trig.ID == 1 {
		eta = timeMs/1000 + 900
	}
	task := map[string]any{
		"appearance":        map[string]any{"triangleColor": nil},
		"completeAfter":     nil,
		"completeBefore":    nil,
		"completionDetails": completion,
		"container":         map[string]any{"type": "WORKER", "worker": worker},
		"creator":           "vjw*RDMKDljKVDve1Vtcplgu",
		"dependencies":      []any{},
		"destination": map[string]any{
			"address": map[string]any{
				"apartment": "", "city": "San Francisco", "country": "United States", "number": "100",
				"postalCode": "94103", "state": "California", "street": "Market Street",
			},
			"id":               "QTxsobLHkNxLjc5HcAkMGYEd",
			"location":         []float64{-122.4194, 37.7749},
			"metadata":         []any{},
			"notes":            "",
			"timeCreated":      timeMs - 3600000,
			"timeLastModified": timeMs - 3600000,
		},
		"estimatedArrivalTime":    nil,
		"estimatedCompletionTime": nil,
		"executor":                "nYrkNP6jZMSKgBwG9qG7ci3J",
		"feedback":                []any{},
		"id":                      o.CarrierRef,
		"identity":                map[string]any{"checksum": nil, "failedScanCount": 0},
		"merchant":                "nYrkNP6jZMSKgBwG9qG7ci3J",
		"metadata": []map[string]any{
			{"name": "waybill_external_id", "type": "string", "value": o.ExternalID, "visibility": []string{"api"}},
			{"name": "waybill_order_id", "type": "number", "value": o.OrderID, "visibility": []string{"api"}},
		},
		"notes":        "Leave at the front desk if nobody answers.",
		"organization": "nYrkNP6jZMSKgBwG9qG7ci3J",
		"overrides":    map[string]any{},
		"pickupTask":   false,
		"quantity":     1,
		"recipients": []map[string]any{{
			"id": "A~pBTrc5~dTMBBImswg7U4YT", "metadata": []any{}, "name": "Bench Customer",
			"notes": "", "organization": "nYrkNP6jZMSKgBwG9qG7ci3J", "phone": "+14155550100",
			"skipSMSNotifications": false, "timeCreated": timeMs - 3600000, "timeLastModified": timeMs - 3600000,
		}},
		"serviceTime":      3,
		"shortId":          shortID,
		"state":            trig.State,
		"timeCreated":      timeMs - 3600000,
		"timeLastModified": timeMs,
		"trackingURL":      o.TrackingURL,
		"trackingViewed":   false,
		"worker":           worker,
	}
	body := map[string]any{
		"actionContext": map[string]any{"id": worker, "type": "WORKER"},
		"adminId":       nil,
		"data":          map[string]any{"task": task},
		"taskId":        o.CarrierRef,
		"time":          timeMs,
		"triggerId":     trig.ID,
		"triggerName":   trig.Name,
		"workerId":      worker,
	}
	if eta != nil {
		body["etaSeconds"] = 900
	}
	return json.Marshal(body)
}

// onfleetSignature is X-Onfleet-Signature: lowercase hex of HMAC-SHA512 over the raw body,
// keyed with the hex-decoded webhook secret.
func onfleetSignature(secret []byte, body []byte) string {
	m := hmac.New(sha512.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
