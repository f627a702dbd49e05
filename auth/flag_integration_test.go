//go:build integration

package auth

import (
	"testing"

	"github.com/natif-uploader/natif-uploader/internal/testredis"
)

// 17 against a real redis-server: two managers, one wrong password, one
// password grant in all.
func TestSharedRejectionFlagRealRedis(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	sharedRejectionFlag(t, NewRedisFlag(srv.Client(t), "natif:"))
}
