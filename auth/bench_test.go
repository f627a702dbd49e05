package auth

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
)

// BenchmarkTokenFastPath measures Token with a valid token and 64 goroutines
// asking at once (GOMAXPROCS × parallelism): the cost every request pays.
func BenchmarkTokenFastPath(b *testing.B) {
	sim := fakeapi.New(fakeapi.Options{})
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	m, err := NewManager(Options{BaseURL: srv.URL, Username: "demo", Password: redact.NewSecret("demo")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Token(ctx, 0); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Token(ctx, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
