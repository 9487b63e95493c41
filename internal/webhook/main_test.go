package webhook

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (batch loops, River clients, the recorder) ends with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
