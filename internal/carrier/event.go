package carrier

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/orders"
)

// Event is one carrier webhook, read by its carrier's Source into carrier-neutral terms.
type Event struct {
	Carrier string
	// EventKey identifies the event at the carrier; a redelivery has the same key. Never empty.
	EventKey string
	// TaskID is the carrier's task (waybill.orders.carrier_ref); empty when the event is not
	// about a task.
	TaskID string
	// ExternalID and OrderID are the references Waybill stored on the task, when the carrier
	// echoes them (Onfleet: task metadata); they find the order before carrier_ref is stored.
	ExternalID string
	OrderID    int64
	// CarrierStatus is the carrier's own word for what happened, the key of its Vocabulary.
	CarrierStatus string
	// OccurredAt is when it happened, on the carrier's clock.
	OccurredAt time.Time
	// Failed: the carrier reports the attempt failed although its word means completion
	// (Onfleet's taskCompleted with completionDetails.success false).
	Failed bool
	// IsPickup: the task is a pickup, so a completion means picked_up rather than delivered.
	IsPickup bool
	// Reason is the carrier's explanation, for status_reason and the logistics email.
	Reason      string
	TrackingURL string
	// Details are carrier facts kept in the order's history (a JSON object).
	Details json.RawMessage
	// Problem, when set, says why a verified JSON body could not be read as this carrier's
	// event; such an event is quarantined, never guessed at.
	Problem string
}

// Outcome is what Waybill does with an event.
type Outcome string

const (
	// OutcomeStatus: the event means a canonical status; the act job applies it.
	OutcomeStatus Outcome = "status"
	// OutcomeRecord: written to the order's history, status unchanged (ETA, arrival, delay).
	OutcomeRecord Outcome = "recorded"
	// OutcomeIgnore: not about a task, or not about one of our orders.
	OutcomeIgnore Outcome = "ignored"
	// OutcomeQuarantine: a word the vocabulary does not know, or an unreadable event. Recorded
	// and the developers told; never guessed.
	OutcomeQuarantine Outcome = "quarantined"
)

// Mapping is what one carrier word means.
type Mapping struct {
	Outcome Outcome
	Status  orders.Status // set when Outcome is OutcomeStatus
}

// Vocabulary maps a carrier's words (Event.CarrierStatus) to what they mean. It is data, so a
// carrier declared in configuration brings its own (see ParseVocabulary).
type Vocabulary map[string]Mapping

// Vocabulary values besides a canonical status name, in ParseVocabulary's input.
const (
	WordRecord = "record"
	WordIgnore = "ignore"
)

// ParseVocabulary builds a Vocabulary from configuration: each carrier word maps to a canonical
// status ("delivered", "failed_attempt"…), "record" (history only) or "ignore".
func ParseVocabulary(words map[string]string) (Vocabulary, error) {
	v := make(Vocabulary, len(words))
	var problems []string
	for word, meaning := range words {
		switch m := strings.TrimSpace(meaning); {
		case word == "":
			problems = append(problems, "empty carrier status")
		case m == WordRecord:
			v[word] = Mapping{Outcome: OutcomeRecord}
		case m == WordIgnore:
			v[word] = Mapping{Outcome: OutcomeIgnore}
		case orders.Status(m).Known() && orders.Status(m) != orders.StatusPending:
			v[word] = Mapping{Outcome: OutcomeStatus, Status: orders.Status(m)}
		default:
			problems = append(problems, fmt.Sprintf("%q: %q is not a status Waybill knows (nor %q or %q)", word, meaning, WordRecord, WordIgnore))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("vocabulary: %s", strings.Join(problems, "; "))
	}
	return v, nil
}

// Translation is the outcome of one event.
type Translation struct {
	Outcome Outcome
	Status  orders.Status // set when Outcome is OutcomeStatus
	// Detail says why, for ignored and quarantined events.
	Detail string
}

// Translate decides what ev means. What a completion means (a failed one is a failed attempt, a
// pickup's is picked_up) is the order's rule (orders.EventStatus), so every carrier's vocabulary
// maps its completion word to delivered.
func (v Vocabulary) Translate(ev Event) Translation {
	if ev.Problem != "" {
		return Translation{Outcome: OutcomeQuarantine, Detail: ev.Problem}
	}
	m, ok := v[ev.CarrierStatus]
	switch {
	case ok && m.Outcome == OutcomeIgnore:
		return Translation{Outcome: OutcomeIgnore, Detail: fmt.Sprintf("%s is not about a delivery", ev.CarrierStatus)}
	case ev.TaskID == "":
		return Translation{Outcome: OutcomeIgnore, Detail: fmt.Sprintf("%s is not about a task", ev.CarrierStatus)}
	case !ok:
		return Translation{Outcome: OutcomeQuarantine, Detail: fmt.Sprintf("unknown carrier status %q", ev.CarrierStatus)}
	case m.Outcome != OutcomeStatus:
		return Translation{Outcome: m.Outcome}
	}
	kind := orders.KindDelivery
	if ev.IsPickup {
		kind = orders.KindPickup
	}
	return Translation{Outcome: OutcomeStatus, Status: orders.EventStatus(m.Status, kind, ev.Failed)}
}
