package worker

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestRoundTripMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	roundTrip(t, asynq.RedisClientOpt{Addr: mr.Addr()}, NewRedisLedger(client, "natif-uploader:"))
}
