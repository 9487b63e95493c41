package onfleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/carrier"
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
	switch {
	case status == http.StatusTooManyRequests:
		e.Class = carrier.RateLimited
		e.RetryAfter = retryAfter(header.Get("Retry-After"), now)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Class = carrier.Unauthorized
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		// POST /tasks does not 404 for a bad order: the URL is wrong (ONFLEET_BASE_URL). That is
		// the integration's fault, not the order's, so retry slowly instead of rejecting every
		// order in the outbox.
		e.Class = carrier.Unauthorized
		e.Message = "endpoint not found, check ONFLEET_BASE_URL: " + e.Message
	case status >= 500:
		// The carrier may have created the task before failing.
		e.Class = carrier.Transient
		e.Ambiguous = true
	case status == http.StatusRequestTimeout:
		// The server gave up reading the request: nothing was done, try again.
		e.Class = carrier.Transient
	case status >= 400:
		e.Class = carrier.Rejected
	default:
		// 1xx/3xx: nothing Onfleet documents; treat as a failure we cannot interpret.
		e.Class = carrier.Transient
		e.Ambiguous = true
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
		return truncateRunes(msg, 1000)
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return truncateRunes(s, 500)
	}
	return http.StatusText(status)
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

// retryAfter reads a Retry-After header (seconds or an HTTP date). Onfleet does not document
// one, so zero is the usual answer.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
