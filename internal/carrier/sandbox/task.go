package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"unicode"
)

// Task is Onfleet's task object, as GET /tasks/{id} and the webhooks return it. Stored tasks are
// never modified: a lifecycle step stores a changed copy, so readers need no lock.
type Task struct {
	ID                      string            `json:"id"`
	TimeCreated             int64             `json:"timeCreated"`
	TimeLastModified        int64             `json:"timeLastModified"`
	Organization            string            `json:"organization"`
	ShortID                 string            `json:"shortId"`
	TrackingURL             string            `json:"trackingURL"`
	Worker                  *string           `json:"worker"`
	Merchant                string            `json:"merchant"`
	Executor                string            `json:"executor"`
	Creator                 string            `json:"creator"`
	Dependencies            []string          `json:"dependencies"`
	State                   int               `json:"state"`
	CompleteAfter           *int64            `json:"completeAfter"`
	CompleteBefore          *int64            `json:"completeBefore"`
	PickupTask              bool              `json:"pickupTask"`
	Notes                   string            `json:"notes"`
	CompletionDetails       CompletionDetails `json:"completionDetails"`
	Feedback                []any             `json:"feedback"`
	Metadata                []Metadata        `json:"metadata"`
	Overrides               struct{}          `json:"overrides"`
	Quantity                float64           `json:"quantity"`
	ServiceTime             float64           `json:"serviceTime"`
	Identity                TaskIdentity      `json:"identity"`
	Appearance              TaskAppearance    `json:"appearance"`
	Container               Container         `json:"container"`
	TrackingViewed          bool              `json:"trackingViewed"`
	Recipients              []Recipient       `json:"recipients"`
	Destination             Destination       `json:"destination"`
	ETA                     *int64            `json:"eta"`
	DelayTime               *float64          `json:"delayTime"`
	EstimatedCompletionTime *int64            `json:"estimatedCompletionTime"`
	EstimatedArrivalTime    *int64            `json:"estimatedArrivalTime"`

	seq uint64 // creation order, finer than TimeCreated's milliseconds
}

// Task states.
const (
	StateUnassigned = 0
	StateAssigned   = 1
	StateActive     = 2
	StateCompleted  = 3 // success and failure alike: read CompletionDetails.Success
)

type CompletionDetails struct {
	Success                bool              `json:"success"`
	FailureReason          string            `json:"failureReason"`
	FailureNotes           string            `json:"failureNotes"`
	Notes                  string            `json:"notes"`
	Time                   *int64            `json:"time"`
	Events                 []CompletionEvent `json:"events"`
	Actions                []any             `json:"actions"`
	FirstLocation          []float64         `json:"firstLocation"`
	LastLocation           []float64         `json:"lastLocation"`
	UnavailableAttachments []any             `json:"unavailableAttachments"`
}

type CompletionEvent struct {
	Name     string    `json:"name"`
	Time     int64     `json:"time"`
	Location []float64 `json:"location,omitempty"`
}

type TaskIdentity struct {
	FailedScanCount int  `json:"failedScanCount"`
	Checksum        *any `json:"checksum"`
}

type TaskAppearance struct {
	TriangleColor *int `json:"triangleColor"`
}

type Container struct {
	Type         string `json:"type"`
	Organization string `json:"organization,omitempty"`
	Worker       string `json:"worker,omitempty"`
}

// Metadata is one entry of a task's metadata; Value keeps the JSON as sent.
type Metadata struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Subtype    string          `json:"subtype,omitempty"`
	Value      json.RawMessage `json:"value"`
	Visibility []string        `json:"visibility"`
}

type Recipient struct {
	ID                   string     `json:"id"`
	Organization         string     `json:"organization"`
	TimeCreated          int64      `json:"timeCreated"`
	TimeLastModified     int64      `json:"timeLastModified"`
	Name                 string     `json:"name"`
	Phone                string     `json:"phone"`
	Notes                string     `json:"notes"`
	SkipSMSNotifications bool       `json:"skipSMSNotifications"`
	Metadata             []Metadata `json:"metadata"`
}

type Destination struct {
	ID               string     `json:"id"`
	TimeCreated      int64      `json:"timeCreated"`
	TimeLastModified int64      `json:"timeLastModified"`
	Location         []float64  `json:"location"`
	Address          Address    `json:"address"`
	Notes            string     `json:"notes"`
	Metadata         []Metadata `json:"metadata"`
	Warnings         []any      `json:"warnings"`
}

type Address struct {
	Apartment  string `json:"apartment"`
	State      string `json:"state"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
	City       string `json:"city"`
	Street     string `json:"street"`
	Number     string `json:"number"`
	Name       string `json:"name,omitempty"`
	Unparsed   string `json:"unparsed,omitempty"`
}

// createTaskBody is the part of POST /tasks the sandbox reads. Destination and recipients may be
// ids in Onfleet; the sandbox keeps no destinations or recipients, so it wants objects.
type createTaskBody struct {
	Destination    *destinationBody `json:"destination"`
	Recipients     []recipientBody  `json:"recipients"`
	Notes          string           `json:"notes"`
	CompleteAfter  *int64           `json:"completeAfter"`
	CompleteBefore *int64           `json:"completeBefore"`
	PickupTask     bool             `json:"pickupTask"`
	Quantity       float64          `json:"quantity"`
	ServiceTime    float64          `json:"serviceTime"`
	Metadata       []Metadata       `json:"metadata"`
}

type destinationBody struct {
	Address  *Address  `json:"address"`
	Location []float64 `json:"location"`
	Notes    string    `json:"notes"`
}

type recipientBody struct {
	Name                 string `json:"name"`
	Phone                string `json:"phone"`
	Notes                string `json:"notes"`
	SkipSMSNotifications bool   `json:"skipSMSNotifications"`
}

// apiError is an Onfleet error answer: HTTP status plus the body's code, number and words.
type apiError struct {
	status  int
	code    string
	number  int
	message string
	cause   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.number, e.code, e.message) }

func invalid(cause string) *apiError {
	return &apiError{400, "InvalidContent", 1000, "The values of one or more parameters are invalid.", cause}
}

// validate checks the body as Onfleet would, to the extent the sandbox cares.
func (b *createTaskBody) validate() *apiError {
	if b.Destination == nil || b.Destination.Address == nil {
		return invalid("destination is required: an object with an address")
	}
	a := b.Destination.Address
	text := strings.Join([]string{a.Unparsed, a.Number, a.Street, a.City, a.State, a.PostalCode, a.Country, a.Apartment}, " ")
	if strings.TrimSpace(a.Unparsed) == "" && (strings.TrimSpace(a.Street) == "" || strings.TrimSpace(a.City) == "") {
		return invalid("destination.address needs unparsed, or street and city")
	}
	if strings.Contains(strings.ToUpper(text), "UNGEOCODABLE") {
		return geocodingError(a, "")
	}
	if b.hasMarker(RejectMarker) {
		return geocodingError(a, "refused on purpose: "+RejectMarker)
	}
	if len(b.Recipients) > 1 {
		return invalid("a task has at most one recipient")
	}
	for _, r := range b.Recipients {
		if strings.TrimSpace(r.Name) == "" {
			return invalid("recipients[0].name is required")
		}
		if !validPhone(r.Phone) {
			return &apiError{400, "InvalidContent", 1010, "Invalid phone number", fmt.Sprintf("phone %q", r.Phone)}
		}
	}
	if len([]rune(b.Notes)) > 10000 {
		return invalid("notes exceed 10,000 characters")
	}
	if b.CompleteAfter != nil && b.CompleteBefore != nil && *b.CompleteAfter > *b.CompleteBefore {
		return &apiError{400, "InvalidContent", 1009, "Invalid time constraints specified",
			"completeAfter is later than completeBefore"}
	}
	for i, m := range b.Metadata {
		if err := m.check(); err != "" {
			return invalid(fmt.Sprintf("metadata[%d] (%s): %s", i, m.Name, err))
		}
	}
	return nil
}

// geocodingError is Onfleet's 1011: the address could not be geocoded.
func geocodingError(a *Address, why string) *apiError {
	text := strings.Join(strings.Fields(strings.Join([]string{a.Unparsed, a.Number, a.Street, a.City, a.State, a.PostalCode, a.Country, a.Apartment}, " ")), " ")
	cause := "No geocoding results for: " + text
	if why != "" {
		cause += " (" + why + ")"
	}
	return &apiError{400, "InvalidContent", 1011, "The address could not be geocoded", cause}
}

// validPhone accepts what a phone library would parse: digits with the usual punctuation, 7–15 digits.
func validPhone(p string) bool {
	digits := 0
	for i, r := range strings.TrimSpace(p) {
		switch {
		case unicode.IsDigit(r):
			digits++
		case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.':
		default:
			return false
		}
	}
	return digits >= 7 && digits <= 15
}

// check returns what is wrong with the entry: Onfleet requires the value's JSON type to match type.
func (m Metadata) check() string {
	if m.Name == "" {
		return "name is required"
	}
	v := bytes.TrimSpace(m.Value)
	if len(v) == 0 {
		return "value is required"
	}
	var ok bool
	switch m.Type {
	case "string":
		ok = v[0] == '"'
	case "number":
		ok = v[0] == '-' || (v[0] >= '0' && v[0] <= '9')
	case "boolean":
		ok = string(v) == "true" || string(v) == "false"
	case "object":
		ok = v[0] == '{'
	case "array":
		ok = v[0] == '['
	default:
		return fmt.Sprintf("type must be one of boolean, number, string, object, array, not %q", m.Type)
	}
	if !ok {
		return fmt.Sprintf("value %s is not a %s", v, m.Type)
	}
	return ""
}

// matches reports whether the entry equals a metadata query entry: same name, type and value.
func (m Metadata) matches(q Metadata) bool {
	if m.Name != q.Name || m.Type != q.Type {
		return false
	}
	var a, b any
	if json.Unmarshal(m.Value, &a) != nil || json.Unmarshal(q.Value, &b) != nil {
		return false
	}
	ab, _ := json.Marshal(a) // canonical: sorted keys, no spaces
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

// stringValue returns the value of a string entry.
func (m Metadata) stringValue() (string, bool) {
	if m.Type != "string" {
		return "", false
	}
	var s string
	if json.Unmarshal(m.Value, &s) != nil {
		return "", false
	}
	return s, true
}

// parseAddress fills the parts Onfleet's geocoder would from an unparsed address written
// "number street, city, state postal, country"; well enough for a sandbox.
func parseAddress(a Address) Address {
	if a.Unparsed == "" {
		return a
	}
	parts := strings.Split(a.Unparsed, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	if n, street, ok := strings.Cut(parts[0], " "); ok && n != "" && unicode.IsDigit(rune(n[0])) {
		a.Number, a.Street = n, street
	} else {
		a.Street = parts[0]
	}
	if len(parts) > 1 {
		a.City = parts[1]
	}
	if len(parts) > 3 {
		fields := strings.Fields(parts[2])
		for _, f := range fields {
			if unicode.IsDigit(rune(f[0])) {
				a.PostalCode = strings.TrimSpace(a.PostalCode + " " + f)
			} else {
				a.State = strings.TrimSpace(a.State + " " + f)
			}
		}
	}
	if len(parts) > 2 {
		a.Country = parts[len(parts)-1]
	}
	return a
}

// fakeLocation is a stable [lon, lat] for an address, within the habitable world.
func fakeLocation(text string) []float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(text))
	x := h.Sum64()
	lon := float64(x%360_000)/1000 - 180
	lat := float64((x>>32)%120_000)/1000 - 60
	return []float64{lon, lat}
}
