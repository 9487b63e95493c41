package onfleet

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
)

func TestTaskBody(t *testing.T) {
	t.Parallel()

	after := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	before := time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600))
	full := orders.Payload{
		Recipient: orders.Recipient{Name: "Ada Lovelace", Phone: "+14155550100", Email: "ada@example.com"},
		Address: orders.Address{Line1: "2695 E Katella Ave", Line2: "Suite 4", City: "Anaheim", Region: "CA",
			PostalCode: "92806", Country: "US"},
		Notes:  "Ring twice",
		Window: &orders.Window{After: &after, Before: &before},
		Items:  []orders.Item{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-2", Quantity: 1}},
	}
	minimal := orders.Payload{
		Recipient: orders.Recipient{Name: "Bo", Phone: "+4930123456"},
		Address:   orders.Address{Line1: "Unter den Linden 1", City: "Berlin", Country: "DE"},
	}
	meta := func(ext string, id int64) []metadata {
		return []metadata{{Name: MetaExternalID, Type: "string", Value: ext}, {Name: MetaOrderID, Type: "number", Value: id}}
	}

	tests := []struct {
		name string
		req  carrier.Request
		want createTaskRequest
	}{
		{
			name: "full delivery",
			req:  carrier.Request{OrderID: 7, ExternalID: "SO-1001", Kind: orders.KindDelivery, Payload: full},
			want: createTaskRequest{
				Destination: destination{Address: address{
					Unparsed: "2695 E Katella Ave, Anaheim, CA 92806, US", Apartment: "Suite 4", Name: "Ada Lovelace",
				}},
				Recipients:     []recipient{{Name: "Ada Lovelace", Phone: "+14155550100"}},
				Notes:          "Ring twice\nItems: 2× SKU-1, 1× SKU-2",
				CompleteAfter:  after.UnixMilli(),
				CompleteBefore: before.UnixMilli(),
				Metadata:       meta("SO-1001", 7),
			},
		},
		{
			name: "minimal delivery",
			req:  carrier.Request{OrderID: 8, ExternalID: "SO-1002", Kind: orders.KindDelivery, Payload: minimal},
			want: createTaskRequest{
				Destination: destination{Address: address{Unparsed: "Unter den Linden 1, Berlin, DE", Name: "Bo"}},
				Recipients:  []recipient{{Name: "Bo", Phone: "+4930123456"}},
				Metadata:    meta("SO-1002", 8),
			},
		},
		{
			name: "pickup with only a postal code and only an upper bound",
			req: carrier.Request{OrderID: 9, ExternalID: "RET-1", Kind: orders.KindPickup, Payload: orders.Payload{
				Recipient: minimal.Recipient,
				Address:   orders.Address{Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"},
				Window:    &orders.Window{Before: &before},
				Items:     []orders.Item{{SKU: "RET", Quantity: 1}},
			}},
			want: createTaskRequest{
				Destination:    destination{Address: address{Unparsed: "1 Main St, Springfield, 12345, US", Name: "Bo"}},
				Recipients:     []recipient{{Name: "Bo", Phone: "+4930123456"}},
				Notes:          "Items: 1× RET",
				CompleteBefore: before.UnixMilli(),
				PickupTask:     true,
				Metadata:       meta("RET-1", 9),
			},
		},
		{
			name: "empty window",
			req: carrier.Request{OrderID: 10, ExternalID: "SO-3", Kind: orders.KindDelivery, Payload: orders.Payload{
				Recipient: minimal.Recipient, Address: minimal.Address, Window: &orders.Window{}, Notes: "  leave at door ",
			}},
			want: createTaskRequest{
				Destination: destination{Address: address{Unparsed: "Unter den Linden 1, Berlin, DE", Name: "Bo"}},
				Recipients:  []recipient{{Name: "Bo", Phone: "+4930123456"}},
				Notes:       "leave at door",
				Metadata:    meta("SO-3", 10),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, taskBody(tt.req))
		})
	}
}

// TestTaskBodyJSON pins the wire format: milliseconds, metadata types, pickupTask always sent.
func TestTaskBodyJSON(t *testing.T) {
	t.Parallel()

	after := time.UnixMilli(1772355600000).UTC()
	b, err := json.Marshal(taskBody(carrier.Request{OrderID: 42, ExternalID: "SO-42", Kind: orders.KindDelivery,
		Payload: orders.Payload{
			Recipient: orders.Recipient{Name: "Ada", Phone: "+14155550100"},
			Address:   orders.Address{Line1: "1 Main St", Line2: "Apt 2", City: "Springfield", Region: "IL", Country: "US"},
			Window:    &orders.Window{After: &after},
		}}))
	require.NoError(t, err)
	require.JSONEq(t, `{
		"destination": {"address": {"unparsed": "1 Main St, Springfield, IL, US", "apartment": "Apt 2", "name": "Ada"}},
		"recipients": [{"name": "Ada", "phone": "+14155550100"}],
		"completeAfter": 1772355600000,
		"pickupTask": false,
		"metadata": [
			{"name": "waybill_external_id", "type": "string", "value": "SO-42"},
			{"name": "waybill_order_id", "type": "number", "value": 42}
		]
	}`, string(b))
}

func TestTaskNotesLimit(t *testing.T) {
	t.Parallel()

	p := orders.Payload{Notes: strings.Repeat("é", maxNotes+50), Items: []orders.Item{{SKU: "A", Quantity: 1}}}
	notes := taskNotes(p)
	require.Equal(t, maxNotes, utf8.RuneCountInString(notes))
	require.True(t, strings.HasSuffix(notes, "…"))
}
