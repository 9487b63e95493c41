package carrier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ClassifyStatus is how every HTTP carrier adapter reads a non-2xx status: what dispatch does
// about it, and whether the carrier may have created the task anyway.
func ClassifyStatus(status int) (class ErrorClass, ambiguous bool) {
	switch {
	case status == http.StatusTooManyRequests:
		return RateLimited, false
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Unauthorized, false
	case EndpointMissing(status):
		// Creating a task does not 404 for a bad order: the URL is wrong. That is the
		// integration's fault, not the order's, so retry slowly and alarm instead of rejecting
		// every order in the outbox.
		return Unauthorized, false
	case status == http.StatusRequestTimeout:
		// The server gave up reading the request: nothing was done.
		return Transient, false
	case status >= 500:
		// The carrier may have created the task before failing.
		return Transient, true
	case status >= 400:
		return Rejected, false
	default:
		// 1xx/3xx: an answer we cannot interpret.
		return Transient, true
	}
}

// EndpointMissing reports a status that means the adapter's URL or method is wrong.
func EndpointMissing(status int) bool {
	return status == http.StatusNotFound || status == http.StatusMethodNotAllowed
}

// NoAnswer is a request that got no (complete) answer: timeout, refused or cut connection. The
// carrier may have acted on it, so it is ambiguous.
func NoAnswer(carrierName, request string, err error) *Error {
	msg := "no answer"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out"
	}
	return &Error{Carrier: carrierName, Class: Transient, Ambiguous: true,
		Message: fmt.Sprintf("%s: %s", request, msg), Err: err}
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date; zero when absent or unreadable.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// ReadBody reads at most limit bytes, then drains and closes the body so the connection goes
// back to the pool.
func ReadBody(rc io.ReadCloser, limit int64) ([]byte, error) {
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, limit))
	return raw, nil
}
