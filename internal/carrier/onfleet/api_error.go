package onfleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// apiError is Onfleet's error body:
// {"code":"InvalidCredentials","message":{"error":1102,"message":"…","request":"…","cause":…}}.
type apiError struct {
	Code    string `json:"code"`
	Message struct {
		Error   int             `json:"error"`
		Message string          `json:"message"`
		Request string          `json:"request"`
		Cause   json.RawMessage `json:"cause"`
	} `json:"message"`
}

// errorFromAnswer turns a non-2xx answer into a *carrier.Error of the class dispatch acts on.
func errorFromAnswer(status int, header http.Header, body []byte, now time.Time) *carrier.Error {
	e := &carrier.Error{Carrier: Name, StatusCode: status, Message: answerMessage(status, body)}
	e.Class, e.Ambiguous = carrier.ClassifyStatus(status)
	if apiErrorNumber(body) == errRateLimited {
		// Onfleet's own code for "too many requests", whatever the status it came with.
		e.Class, e.Ambiguous = carrier.RateLimited, false
	}
	if e.Class == carrier.RateLimited {
		e.RetryAfter = carrier.RetryAfter(header.Get("Retry-After"), now)
	}
	if carrier.EndpointMissing(status) {
		e.Message = "endpoint not found, check ONFLEET_BASE_URL: " + e.Message
	}
	return e
}

// answerMessage is the carrier's own words for status_reason: "The address could not be
// geocoded (error 1011 InvalidContent): <cause>", or the raw body when it is not Onfleet's shape.
func answerMessage(status int, body []byte) string {
	var ae apiError
	if err := json.Unmarshal(body, &ae); err == nil && ae.Message.Message != "" {
		msg := ae.Message.Message
		code := strings.TrimSpace(fmt.Sprintf("%s %s", errorNumber(ae.Message.Error), ae.Code))
		if code != "" {
			msg += " (" + code + ")"
		}
		if cause := causeText(ae.Message.Cause); cause != "" {
			msg += ": " + cause
		}
		return truncate.Runes(msg, 1000)
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return truncate.Runes(s, 500)
	}
	return http.StatusText(status)
}

// errRateLimited is Onfleet's error number for an organisation over its rate limit.
const errRateLimited = 2300

func apiErrorNumber(body []byte) int {
	var ae apiError
	if json.Unmarshal(body, &ae) != nil {
		return 0
	}
	return ae.Message.Error
}

func errorNumber(n int) string {
	if n == 0 {
		return ""
	}
	return "error " + strconv.Itoa(n)
}

// causeText renders Onfleet's cause, which is a string or a structure.
func causeText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	return string(raw)
}
