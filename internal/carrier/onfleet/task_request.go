package onfleet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/truncate"
)

// Metadata names Waybill stores on every task. MetaExternalID is how FindTask finds a task again
// after an ambiguous failure; webhook translation reads both to find the order.
const (
	MetaExternalID = "waybill_external_id"
	MetaOrderID    = "waybill_order_id"
	// MetaBatchID is the waybill.dispatch_batches id of the request that created the task: one
	// metadata lookup finds every task of a batch whose outcome was lost.
	MetaBatchID = "waybill_batch_id"
)

// maxNotes is Onfleet's limit on a task's notes.
const maxNotes = 10000

// createTaskRequest is the body of POST /tasks, only the fields Waybill sets.
type createTaskRequest struct {
	Destination    destination `json:"destination"`
	Recipients     []recipient `json:"recipients"`
	Notes          string      `json:"notes,omitempty"`
	CompleteAfter  int64       `json:"completeAfter,omitempty"`
	CompleteBefore int64       `json:"completeBefore,omitempty"`
	PickupTask     bool        `json:"pickupTask"`
	Metadata       []metadata  `json:"metadata"`
}

type destination struct {
	Address address `json:"address"`
}

// address sends the whole address as unparsed text: Onfleet geocodes it, and unparsed overrides
// every part except name and apartment.
type address struct {
	Unparsed  string `json:"unparsed"`
	Apartment string `json:"apartment,omitempty"`
	Name      string `json:"name,omitempty"`
}

type recipient struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

type metadata struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// taskBody maps an order to Onfleet's create-task request.
func taskBody(req carrier.Request) createTaskRequest {
	p := req.Payload
	body := createTaskRequest{
		Destination: destination{Address: address{
			Unparsed:  unparsedAddress(p.Address),
			Apartment: strings.TrimSpace(p.Address.Line2),
			Name:      strings.TrimSpace(p.Recipient.Name),
		}},
		Recipients: []recipient{{Name: strings.TrimSpace(p.Recipient.Name), Phone: strings.TrimSpace(p.Recipient.Phone)}},
		Notes:      taskNotes(p),
		PickupTask: req.Kind == orders.KindPickup,
		Metadata: []metadata{
			{Name: MetaExternalID, Type: "string", Value: req.ExternalID},
			{Name: MetaOrderID, Type: "number", Value: req.OrderID},
		},
	}
	if req.BatchID != 0 {
		body.Metadata = append(body.Metadata, metadata{Name: MetaBatchID, Type: "string", Value: strconv.FormatInt(req.BatchID, 10)})
	}
	if w := p.Window; w != nil {
		if w.After != nil {
			body.CompleteAfter = w.After.UnixMilli()
		}
		if w.Before != nil {
			body.CompleteBefore = w.Before.UnixMilli()
		}
	}
	return body
}

// unparsedAddress writes the address the way it is read aloud: "line1, city, region postal, country".
func unparsedAddress(a orders.Address) string {
	regionPostal := strings.TrimSpace(strings.TrimSpace(a.Region) + " " + strings.TrimSpace(a.PostalCode))
	var parts []string
	for _, s := range []string{a.Line1, a.City, regionPostal, a.Country} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// taskNotes is the order's notes followed by a one-line items summary, cut to Onfleet's limit.
func taskNotes(p orders.Payload) string {
	notes := strings.TrimSpace(p.Notes)
	if len(p.Items) > 0 {
		items := make([]string, 0, len(p.Items))
		for _, it := range p.Items {
			items = append(items, fmt.Sprintf("%d× %s", it.Quantity, it.SKU))
		}
		summary := "Items: " + strings.Join(items, ", ")
		if notes != "" {
			notes += "\n"
		}
		notes += summary
	}
	return truncate.Runes(notes, maxNotes)
}
