package dispatch_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (batch loops, collectors, trackers) ends with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
