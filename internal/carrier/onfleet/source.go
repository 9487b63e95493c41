package onfleet

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/truncate"
)

// The inbound half of the Onfleet adapter: its webhooks, read into carrier.Event (Onfleet's
// webhook facts: ../shared/CARRIERS.md, docs.onfleet.com/reference/webhooks).

// SignatureHeader carries the webhook's signature.
const SignatureHeader = "X-Onfleet-Signature"

// Triggers names Onfleet's webhook trigger ids, for payloads that carry only the id.
var Triggers = map[int]string{
	0:  "taskStarted",
	1:  "taskEta",
	2:  "taskArrival",
	3:  "taskCompleted",
	4:  "taskFailed",
	5:  "workerDuty",
	6:  "taskCreated",
	7:  "taskUpdated",
	8:  "taskDeleted",
	9:  "taskAssigned",
	10: "taskUnassigned",
	12: "taskDelayed",
	13: "taskCloned",
	14: "smsRecipientResponseMissed",
	15: "workerCreated",
	16: "workerDeleted",
	17: "SMSRecipientOptOut",
	18: "autoDispatchJobCompleted",
	19: "taskBatchCreateJobCompleted",
}

// Vocabulary is what each Onfleet trigger means for an order. taskCompleted with
// completionDetails.success false becomes failed_attempt, and on a pickup task picked_up (see
// carrier.Vocabulary.Translate). A trigger missing here is quarantined.
var Vocabulary = carrier.Vocabulary{
	"taskCreated":    {Outcome: carrier.OutcomeStatus, Status: orders.StatusDispatched},
	"taskAssigned":   {Outcome: carrier.OutcomeStatus, Status: orders.StatusAssigned},
	"taskUnassigned": {Outcome: carrier.OutcomeStatus, Status: orders.StatusDispatched},
	"taskStarted":    {Outcome: carrier.OutcomeStatus, Status: orders.StatusInTransit},
	"taskCompleted":  {Outcome: carrier.OutcomeStatus, Status: orders.StatusDelivered},
	"taskFailed":     {Outcome: carrier.OutcomeStatus, Status: orders.StatusFailedAttempt},
	"taskDeleted":    {Outcome: carrier.OutcomeStatus, Status: orders.StatusCancelled},
	// Informative: the order's history, status unchanged. taskUpdated repeats changes the
	// specific triggers report (assignment, completion) plus notes and attachments.
	"taskEta":                    {Outcome: carrier.OutcomeRecord},
	"taskArrival":                {Outcome: carrier.OutcomeRecord},
	"taskDelayed":                {Outcome: carrier.OutcomeRecord},
	"taskUpdated":                {Outcome: carrier.OutcomeRecord},
	"smsRecipientResponseMissed": {Outcome: carrier.OutcomeRecord},
	// A clone is a new task, not the order's; the rest are not about a task.
	"taskCloned":                  {Outcome: carrier.OutcomeIgnore},
	"workerDuty":                  {Outcome: carrier.OutcomeIgnore},
	"workerCreated":               {Outcome: carrier.OutcomeIgnore},
	"workerDeleted":               {Outcome: carrier.OutcomeIgnore},
	"SMSRecipientOptOut":          {Outcome: carrier.OutcomeIgnore},
	"autoDispatchJobCompleted":    {Outcome: carrier.OutcomeIgnore},
	"taskBatchCreateJobCompleted": {Outcome: carrier.OutcomeIgnore},
}

// Source reads Onfleet's webhooks: a carrier.BatchSource.
type Source struct {
	secrets [][]byte
}

// NewSource takes the webhook secrets as Onfleet shows them (hex): one, or two while rotating.
// With none, every webhook is refused as unsigned-by-us, which the bad-signature count makes
// loud.
func NewSource(secrets []string) (*Source, error) {
	if len(secrets) > 2 {
		return nil, errors.New("onfleet webhook: at most two secrets (ONFLEET_WEBHOOK_SECRET)")
	}
	o := &Source{}
	for _, s := range secrets {
		key, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil || len(key) == 0 {
			return nil, errors.New("onfleet webhook: a secret is not the hex string Onfleet shows (ONFLEET_WEBHOOK_SECRET)")
		}
		o.secrets = append(o.secrets, key)
	}
	return o, nil
}

func (*Source) Name() string { return Name }

func (*Source) Vocabulary() carrier.Vocabulary { return Vocabulary }

// Verify: X-Onfleet-Signature is the hex HMAC-SHA512 of the raw body, keyed with the secret's
// bytes (the hex-decoded secret).
func (o *Source) Verify(body []byte, header http.Header) error {
	sig := strings.TrimSpace(header.Get(SignatureHeader))
	if sig == "" {
		return carrier.ErrUnsigned
	}
	mac, err := hex.DecodeString(sig)
	if err != nil || len(mac) != sha512.Size {
		return carrier.ErrBadSignature
	}
	return carrier.CheckHMAC(sha512.New, o.secrets, body, mac)
}

// webhookPayload is the part of Onfleet's webhook body Waybill reads. Every trigger sends
// taskId, time (ms), triggerId, triggerName, workerId, adminId, actionContext and data; some add
// etaSeconds, distance or delay.
type webhookPayload struct {
	TaskID        *string `json:"taskId"`
	Time          *int64  `json:"time"`
	TriggerID     *int    `json:"triggerId"`
	TriggerName   string  `json:"triggerName"`
	WorkerID      *string `json:"workerId"`
	ActionContext *struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"actionContext"`
	ETASeconds *float64 `json:"etaSeconds"`
	Distance   *float64 `json:"distance"`
	Delay      *float64 `json:"delay"`
	Data       *struct {
		Task *webhookTask `json:"task"`
	} `json:"data"`
}

type webhookTask struct {
	ID                string            `json:"id"`
	ShortID           string            `json:"shortId"`
	State             *int              `json:"state"`
	PickupTask        bool              `json:"pickupTask"`
	TrackingURL       string            `json:"trackingURL"`
	Metadata          []webhookMetadata `json:"metadata"`
	CompletionDetails *struct {
		Success       *bool  `json:"success"`
		FailureReason string `json:"failureReason"`
		FailureNotes  string `json:"failureNotes"`
		Notes         string `json:"notes"`
		Time          *int64 `json:"time"`
	} `json:"completionDetails"`
}

type webhookMetadata struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// webhookDetails is what an order's history keeps of an Onfleet event.
type webhookDetails struct {
	TriggerID       *int     `json:"trigger_id,omitempty"`
	WorkerID        string   `json:"worker_id,omitempty"`
	ActionBy        string   `json:"action_by,omitempty"` // "WORKER <id>", "ADMIN <id>", "API <id>"
	TaskShortID     string   `json:"task_short_id,omitempty"`
	TaskState       *int     `json:"task_state,omitempty"`
	ETASeconds      *float64 `json:"eta_seconds,omitempty"`
	DistanceMeters  *float64 `json:"distance_meters,omitempty"`
	DelaySeconds    *float64 `json:"delay_seconds,omitempty"`
	Success         *bool    `json:"success,omitempty"`
	FailureReason   string   `json:"failure_reason,omitempty"`
	FailureNotes    string   `json:"failure_notes,omitempty"`
	CompletionNotes string   `json:"completion_notes,omitempty"`
	CompletedAt     *int64   `json:"completed_at_ms,omitempty"`
}

// Parse reads an Onfleet webhook body. The event key is "<taskId>:<triggerId>:<time>", what
// Onfleet repeats on a redelivery; events without a task are keyed by their bytes.
func (o *Source) Parse(body []byte) (carrier.Event, error) {
	ev := carrier.Event{Carrier: Name}
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		// Unmarshal checks the whole body is JSON before it decodes anything.
		if synErr := (*json.SyntaxError)(nil); errors.As(err, &synErr) {
			return carrier.Event{}, fmt.Errorf("%w: %v", carrier.ErrNotJSON, err)
		}
		return o.unreadable(ev, body, fmt.Sprintf("not an Onfleet webhook: %v", err)), nil
	}
	switch {
	case p.TriggerName != "":
		ev.CarrierStatus = p.TriggerName
	case p.TriggerID != nil && Triggers[*p.TriggerID] != "":
		ev.CarrierStatus = Triggers[*p.TriggerID]
	case p.TriggerID != nil:
		ev.CarrierStatus = "trigger " + strconv.Itoa(*p.TriggerID)
	default:
		return o.unreadable(ev, body, "not an Onfleet webhook: no triggerId or triggerName"), nil
	}
	if p.Time == nil || *p.Time <= 0 {
		return o.unreadable(ev, body, "not an Onfleet webhook: no time"), nil
	}
	ev.OccurredAt = time.UnixMilli(*p.Time).UTC()

	var task *webhookTask
	if p.Data != nil {
		task = p.Data.Task
	}
	if p.TaskID != nil {
		ev.TaskID = *p.TaskID
	}
	if ev.TaskID == "" && task != nil {
		ev.TaskID = task.ID
	}
	trigger := p.TriggerName
	if p.TriggerID != nil {
		trigger = strconv.Itoa(*p.TriggerID)
	}
	if ev.TaskID != "" {
		ev.EventKey = ev.TaskID + ":" + trigger + ":" + strconv.FormatInt(*p.Time, 10)
	} else {
		ev.EventKey = carrier.BodyKey(body)
	}

	d := webhookDetails{TriggerID: p.TriggerID, ETASeconds: p.ETASeconds, DistanceMeters: p.Distance, DelaySeconds: p.Delay}
	if p.WorkerID != nil {
		d.WorkerID = *p.WorkerID
	}
	if ac := p.ActionContext; ac != nil && ac.Type != "" {
		d.ActionBy = strings.TrimSpace(ac.Type + " " + ac.ID)
	}
	if task != nil {
		ev.IsPickup = task.PickupTask
		ev.TrackingURL = task.TrackingURL
		ev.ExternalID, ev.OrderID = onfleetReferences(task.Metadata)
		d.TaskShortID, d.TaskState = task.ShortID, task.State
		if cd := task.CompletionDetails; cd != nil {
			ev.Failed = cd.Success != nil && !*cd.Success
			d.Success, d.FailureNotes, d.CompletionNotes, d.CompletedAt = cd.Success, cd.FailureNotes, cd.Notes, cd.Time
			if cd.FailureReason != "NONE" {
				d.FailureReason = cd.FailureReason
			}
		}
	}
	switch {
	case ev.Failed || ev.CarrierStatus == "taskFailed":
		ev.Reason = joinNonEmpty(": ", d.FailureReason, joinNonEmpty("; ", d.FailureNotes, d.CompletionNotes))
		if ev.Reason == "" {
			ev.Reason = "attempt failed (no reason given)"
		}
	case ev.CarrierStatus == "taskDeleted":
		ev.Reason = joinNonEmpty(" by ", "task deleted at Onfleet", d.ActionBy)
	}
	details, err := json.Marshal(d)
	if err != nil {
		return carrier.Event{}, fmt.Errorf("onfleet webhook details: %w", err)
	}
	ev.Details = details
	return ev, nil
}

// unreadable is a verified JSON body that is not an Onfleet event Waybill can read.
func (*Source) unreadable(ev carrier.Event, body []byte, problem string) carrier.Event {
	ev.EventKey = carrier.BodyKey(body)
	ev.Problem = truncate.Runes(problem, 500)
	ev.Details = json.RawMessage(`{}`)
	return ev
}

// onfleetReferences reads the external id and order id Waybill stored in the task's metadata.
// Values of another type than Waybill stores are left out rather than guessed at.
func onfleetReferences(meta []webhookMetadata) (externalID string, orderID int64) {
	for _, m := range meta {
		switch m.Name {
		case MetaExternalID:
			var s string
			if json.Unmarshal(m.Value, &s) == nil {
				externalID = s
			}
		case MetaOrderID:
			var n json.Number
			if json.Unmarshal(m.Value, &n) == nil {
				if id, err := n.Int64(); err == nil && id > 0 {
					orderID = id
				}
			}
		}
	}
	return externalID, orderID
}

// batchCompleted is trigger 19: an async batch job finished; its body carries the job's results,
// as GET /tasks/batch/{jobId} does.
const batchCompleted = "taskBatchCreateJobCompleted"

// BatchCompleted reads trigger 19's job id and results (see carrier.BatchSource).
func (*Source) BatchCompleted(ev carrier.Event, body []byte) (jobID string, res carrier.BatchResult, ok bool) {
	if ev.CarrierStatus != batchCompleted {
		return "", carrier.BatchResult{}, false
	}
	jobID = gjson.GetBytes(body, "jobId").String()
	if jobID == "" {
		return "", carrier.BatchResult{}, false
	}
	return jobID, ParseBatchResult(body), true
}

func joinNonEmpty(sep string, parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}
