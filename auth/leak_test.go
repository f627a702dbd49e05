package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when any goroutine they started is
// still running after the last one: a leak in a long-running daemon grows
// without bound.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
