package onfleet_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/carrier/onfleet/onfleettest"
	"github.com/waybill/waybill/internal/orders"
)

const (
	testSecret  = onfleettest.Secret
	otherSecret = onfleettest.Other
)

// A known vector, computed outside Go: both
//
//	python3 -c 'import hmac,binascii;print(hmac.new(binascii.a2b_hex(SECRET),BODY,"sha512").hexdigest())'
//	printf %s BODY | openssl dgst -sha512 -mac HMAC -macopt hexkey:SECRET
//
// give this signature for knownBody under testSecret.
const (
	knownBody      = `{"taskId":"txiK2xHBIaUwAKB~BJrjscKu","time":1613004460070,"triggerId":4,"triggerName":"taskFailed","workerId":null,"adminId":null,"actionContext":null,"data":{"task":{"id":"txiK2xHBIaUwAKB~BJrjscKu"}}}`
	knownSignature = "33d00eec7a130f449faf139d09ad9afdac62098ea7a967fc07e9402266cabe27559d95fbf3f40c347c0879f95f4d4435c1294ab294034eeb0928f97c7fa64a16"
)

func TestOnfleetVerify(t *testing.T) {
	t.Parallel()

	body := onfleettest.Fixture(t, "task_completed")
	header := func(sig string) http.Header {
		h := http.Header{}
		if sig != "" {
			h.Set("X-Onfleet-Signature", sig)
		}
		return h
	}
	sha256Sig := func() string {
		key, _ := hex.DecodeString(testSecret)
		m := hmac.New(sha256.New, key)
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	asciiKeySig := func() string { // the secret used as text, not hex-decoded: wrong
		m := hmac.New(sha512.New, []byte(testSecret))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}

	tests := []struct {
		name    string
		secrets []string
		body    []byte
		header  http.Header
		want    error
	}{
		{"known vector", []string{testSecret}, []byte(knownBody), header(knownSignature), nil},
		{"known vector, upper-case hex", []string{testSecret}, []byte(knownBody), header(strings.ToUpper(knownSignature)), nil},
		{"documented payload", []string{testSecret}, body, header(onfleettest.Sign(t, testSecret, body)), nil},
		{"rotation: signed with the new secret", []string{testSecret, otherSecret}, body, header(onfleettest.Sign(t, otherSecret, body)), nil},
		{"rotation: signed with the old secret", []string{otherSecret, testSecret}, body, header(onfleettest.Sign(t, testSecret, body)), nil},
		{"unsigned", []string{testSecret}, body, header(""), carrier.ErrUnsigned},
		{"signed with another secret", []string{testSecret}, body, header(onfleettest.Sign(t, otherSecret, body)), carrier.ErrBadSignature},
		{"body changed after signing", []string{testSecret}, append(bytes.Clone(body), ' '), header(onfleettest.Sign(t, testSecret, body)), carrier.ErrBadSignature},
		{"known signature on another body", []string{testSecret}, body, header(knownSignature), carrier.ErrBadSignature},
		{"not hex", []string{testSecret}, body, header("not-a-signature"), carrier.ErrBadSignature},
		{"truncated", []string{testSecret}, body, header(onfleettest.Sign(t, testSecret, body)[:64]), carrier.ErrBadSignature},
		{"HMAC-SHA256 instead of SHA512", []string{testSecret}, body, header(sha256Sig()), carrier.ErrBadSignature},
		{"secret not hex-decoded", []string{testSecret}, body, header(asciiKeySig()), carrier.ErrBadSignature},
		{"no secret configured", nil, body, header(onfleettest.Sign(t, testSecret, body)), carrier.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, err := onfleet.NewSource(tt.secrets)
			require.NoError(t, err)
			err = src.Verify(tt.body, tt.header)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func TestNewSourceRejectsBadSecrets(t *testing.T) {
	t.Parallel()
	for _, secrets := range [][]string{{"xyz"}, {"abc"}, {""}, {testSecret, otherSecret, testSecret}} {
		_, err := onfleet.NewSource(secrets)
		require.Error(t, err, "%q", secrets)
	}
}

func TestOnfleetParseDocumentedPayloads(t *testing.T) {
	t.Parallel()
	src, err := onfleet.NewSource([]string{testSecret})
	require.NoError(t, err)

	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	tests := []struct {
		fixture     string
		status      string
		taskID      string
		key         string // "" means keyed by the body's hash
		at          time.Time
		failed      bool
		reason      string
		tracking    string
		translation carrier.Translation
	}{
		{"task_created", "taskCreated", "txiK2xHBIaUwAKB~BJrjscKu", "txiK2xHBIaUwAKB~BJrjscKu:6:1613002584051", ms(1613002584051), false, "", "https://onf.lt/fab829cf81",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDispatched}},
		{"task_assigned", "taskAssigned", "txiK2xHBIaUwAKB~BJrjscKu", "txiK2xHBIaUwAKB~BJrjscKu:9:1613004164575", ms(1613004164575), false, "", "https://onf.lt/fab829cf81",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusAssigned}},
		{"task_unassigned", "taskUnassigned", "txiK2xHBIaUwAKB~BJrjscKu", "txiK2xHBIaUwAKB~BJrjscKu:10:1613003963647", ms(1613003963647), false, "", "https://onf.lt/fab829cf81",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDispatched}},
		{"task_started", "taskStarted", "txiK2xHBIaUwAKB~BJrjscKu", "txiK2xHBIaUwAKB~BJrjscKu:0:1613004361894", ms(1613004361894), false, "", "https://onf.lt/fab829cf81",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusInTransit}},
		{"task_completed", "taskCompleted", "kwKafWU5jRmzeOpazE8WE9Ye", "kwKafWU5jRmzeOpazE8WE9Ye:3:1686611636796", ms(1686611636796), false, "", "https://onf.lt/6055984c46",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDelivered}},
		{"task_failed", "taskFailed", "txiK2xHBIaUwAKB~BJrjscKu", "txiK2xHBIaUwAKB~BJrjscKu:4:1613004460070", ms(1613004460070), true, "UNABLE_TO_LOCATE: this is a failure note", "https://onf.lt/fab829cf81",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusFailedAttempt}},
		{"task_deleted", "taskDeleted", "3C0W9uLyWC5R4V5fuj7bzJpk", "3C0W9uLyWC5R4V5fuj7bzJpk:8:1613004265027", ms(1613004265027), false, "task deleted at Onfleet by ADMIN vjw*RDMKDljKVDve1Vtcplgu", "https://onf.lt/9ad82b2380",
			carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusCancelled}},
		{"task_eta", "taskEta", "hV2lAmBLs~76oXR4jYBjQbgY", "hV2lAmBLs~76oXR4jYBjQbgY:1:1615505708224", ms(1615505708224), false, "", "https://onf.lt/a685d01d24",
			carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"task_arrival", "taskArrival", "hV2lAmBLs~76oXR4jYBjQbgY", "hV2lAmBLs~76oXR4jYBjQbgY:2:1615505822024", ms(1615505822024), false, "", "https://onf.lt/a685d01d24",
			carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"task_delayed", "taskDelayed", "zIeGIBZQZhTRHaK6V6V74Fpg", "zIeGIBZQZhTRHaK6V6V74Fpg:12:1613178058862", ms(1613178058862), false, "", "https://onf.lt/a79d22fb77",
			carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"task_updated", "taskUpdated", "w7CcGpzsMnEiUg1AqgxQbPE~", "w7CcGpzsMnEiUg1AqgxQbPE~:7:1627329522593", ms(1627329522593), false, "", "https://onf.lt/c9ed4d00",
			carrier.Translation{Outcome: carrier.OutcomeRecord}},
		{"worker_duty", "workerDuty", "", "", ms(1613003870062), false, "", "",
			carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "workerDuty is not about a delivery"}},
		{"worker_created", "workerCreated", "", "", ms(1623274200840), false, "", "",
			carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "workerCreated is not about a delivery"}},
		{"sms_recipient_opt_out", "SMSRecipientOptOut", "", "", ms(1632432776640), false, "", "",
			carrier.Translation{Outcome: carrier.OutcomeIgnore, Detail: "SMSRecipientOptOut is not about a delivery"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			body := onfleettest.Fixture(t, tt.fixture)
			ev, err := src.Parse(body)
			require.NoError(t, err)
			require.Empty(t, ev.Problem)
			require.Equal(t, onfleet.Name, ev.Carrier)
			require.Equal(t, tt.status, ev.CarrierStatus)
			require.Equal(t, tt.taskID, ev.TaskID)
			if tt.key == "" {
				require.Equal(t, carrier.BodyKey(body), ev.EventKey)
			} else {
				require.Equal(t, tt.key, ev.EventKey)
			}
			require.Equal(t, tt.at, ev.OccurredAt)
			require.Equal(t, tt.failed, ev.Failed)
			require.False(t, ev.IsPickup)
			require.Equal(t, tt.reason, ev.Reason)
			require.Equal(t, tt.tracking, ev.TrackingURL)
			require.Empty(t, ev.ExternalID, "the documented tasks carry no metadata")
			require.True(t, json.Valid(ev.Details))
			require.Equal(t, tt.translation, onfleet.Vocabulary.Translate(ev))
		})
	}
}

func TestOnfleetParseDetails(t *testing.T) {
	t.Parallel()
	src, err := onfleet.NewSource(nil)
	require.NoError(t, err)

	ev, err := src.Parse(onfleettest.Fixture(t, "task_failed"))
	require.NoError(t, err)
	require.JSONEq(t, `{
		"trigger_id": 4, "worker_id": "COwfwH~Zogm1LXIZYbPlLAyw", "action_by": "WORKER COwfwH~Zogm1LXIZYbPlLAyw",
		"task_short_id": "fab829cf", "task_state": 3, "success": false, "failure_reason": "UNABLE_TO_LOCATE",
		"completion_notes": "this is a failure note", "completed_at_ms": 1613004459779}`, string(ev.Details))

	ev, err = src.Parse(onfleettest.Fixture(t, "task_eta"))
	require.NoError(t, err)
	require.JSONEq(t, `{"trigger_id": 1, "task_short_id": "a685d01d", "task_state": 2, "eta_seconds": 298.2603148875159}`, string(ev.Details))
}

func TestOnfleetParseWaybillTask(t *testing.T) {
	t.Parallel()
	src, err := onfleet.NewSource(nil)
	require.NoError(t, err)

	// A completed pickup task that Waybill created, and the same completion marked unsuccessful.
	body := onfleettest.Derive(t, onfleettest.Fixture(t, "task_completed"), map[string]any{
		"data.task.metadata":   onfleettest.WaybillMetadata("SO-1001", 42),
		"data.task.pickupTask": true,
	})
	ev, err := src.Parse(body)
	require.NoError(t, err)
	require.Equal(t, "SO-1001", ev.ExternalID)
	require.Equal(t, int64(42), ev.OrderID)
	require.True(t, ev.IsPickup)
	require.Equal(t, carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusPickedUp}, onfleet.Vocabulary.Translate(ev))

	failed := onfleettest.Derive(t, body, map[string]any{
		"data.task.completionDetails.success":       false,
		"data.task.completionDetails.failureReason": "RECIPIENT_NOT_AVAILABLE",
		"data.task.completionDetails.failureNotes":  "Nobody answered the door",
	})
	ev, err = src.Parse(failed)
	require.NoError(t, err)
	require.True(t, ev.Failed)
	require.Equal(t, "RECIPIENT_NOT_AVAILABLE: Nobody answered the door", ev.Reason)
	require.Equal(t, carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusFailedAttempt}, onfleet.Vocabulary.Translate(ev))

	// Metadata of other types than Waybill writes is not guessed at.
	odd := onfleettest.Derive(t, body, map[string]any{"data.task.metadata": []any{
		map[string]any{"name": "waybill_external_id", "type": "number", "value": 7},
		map[string]any{"name": "waybill_order_id", "type": "string", "value": "not a number"},
	}})
	ev, err = src.Parse(odd)
	require.NoError(t, err)
	require.Empty(t, ev.ExternalID)
	require.Zero(t, ev.OrderID)
}

func TestOnfleetParseUnreadable(t *testing.T) {
	t.Parallel()
	src, err := onfleet.NewSource(nil)
	require.NoError(t, err)

	for _, body := range []string{``, `{`, `{"taskId": "x",}`, "\xff\xfe", `{"a":1} {"b":2}`} {
		_, err := src.Parse([]byte(body))
		require.ErrorIs(t, err, carrier.ErrNotJSON, "%q", body)
	}

	base := onfleettest.Fixture(t, "task_started")
	unreadable := map[string][]byte{
		"array":             []byte(`[1, 2, 3]`),
		"string":            []byte(`"taskStarted"`),
		"no trigger":        []byte(`{"taskId": "abc", "time": 1613004361894}`),
		"no time":           []byte(`{"taskId": "abc", "triggerId": 0, "triggerName": "taskStarted"}`),
		"time as text":      onfleettest.Derive(t, base, map[string]any{"time": "yesterday"}),
		"task as a list":    onfleettest.Derive(t, base, map[string]any{"data": map[string]any{"task": []any{1}}}),
		"fractional millis": onfleettest.Derive(t, base, map[string]any{"time": json.Number("1613004361894.5")}),
	}
	for name, body := range unreadable {
		ev, err := src.Parse(body)
		require.NoError(t, err, name)
		require.NotEmpty(t, ev.Problem, name)
		require.Equal(t, carrier.BodyKey(body), ev.EventKey, name)
		require.Equal(t, carrier.OutcomeQuarantine, onfleet.Vocabulary.Translate(ev).Outcome, name)
	}

	// A trigger Waybill has no word for (here a newer one, by id only) is quarantined.
	ev, err := src.Parse(onfleettest.Derive(t, base, map[string]any{"triggerId": 30, "triggerName": "predictedTaskDelay"}))
	require.NoError(t, err)
	require.Empty(t, ev.Problem)
	require.Equal(t, carrier.Translation{Outcome: carrier.OutcomeQuarantine, Detail: `unknown carrier status "predictedTaskDelay"`}, onfleet.Vocabulary.Translate(ev))
	ev, err = src.Parse(onfleettest.Derive(t, base, map[string]any{"triggerId": 31, "triggerName": ""}))
	require.NoError(t, err)
	require.Equal(t, "trigger 31", ev.CarrierStatus)
	require.Equal(t, carrier.OutcomeQuarantine, onfleet.Vocabulary.Translate(ev).Outcome)
}

// FuzzOnfleetParse: whatever a carrier (or a holder of the secret) sends, Parse never panics,
// and an event it accepts can be stored and translated.
func FuzzOnfleetParse(f *testing.F) {
	for _, b := range onfleettest.Fixtures(f) {
		f.Add(b)
	}
	f.Add([]byte(knownBody))
	f.Add([]byte(`{"taskId":null,"time":0,"triggerId":-1,"data":null}`))
	f.Add([]byte(`{"data":{"task":{"metadata":[{"name":"waybill_order_id","value":1e400}]}},"time":1,"triggerId":3}`))

	src, err := onfleet.NewSource(nil)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := src.Parse(body)
		if err != nil {
			require.ErrorIs(t, err, carrier.ErrNotJSON)
			require.False(t, json.Valid(body))
			return
		}
		require.NotEmpty(t, ev.EventKey)
		require.Equal(t, onfleet.Name, ev.Carrier)
		require.True(t, json.Valid(ev.Details))
		tr := onfleet.Vocabulary.Translate(ev)
		if tr.Outcome == carrier.OutcomeStatus {
			require.True(t, tr.Status.Known())
			require.NotEmpty(t, ev.TaskID)
		}
	})
}

// FuzzOnfleetVerify: Verify never panics, accepts exactly the right signature, and refuses
// anything else.
func FuzzOnfleetVerify(f *testing.F) {
	for _, name := range []string{"task_completed", "task_failed"} {
		f.Add(onfleettest.Fixture(f, name), "")
	}
	f.Add([]byte(knownBody), knownSignature)
	f.Add([]byte(knownBody), "zz")

	src, err := onfleet.NewSource([]string{testSecret})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := http.Header{}
		h.Set(onfleet.SignatureHeader, sig)
		if err := src.Verify(body, h); err == nil {
			require.Equal(t, onfleettest.Sign(t, testSecret, body), strings.ToLower(strings.TrimSpace(sig)))
		}
		h.Set(onfleet.SignatureHeader, onfleettest.Sign(t, testSecret, body))
		require.NoError(t, src.Verify(body, h))
	})
}
