package main

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}, {10, 1}, {11, 2}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input")
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	if got := percentile([]float64{42}, 99); got != 42 {
		t.Errorf("single value: %v", got)
	}
}

func TestProcCPUTicks(t *testing.T) {
	// comm holds a space and a ')': fields must be counted from the last ')'.
	stat := "4242 (nat) if (x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 100 123456 789 18446744073709551615\n"
	u, s, err := procCPUTicks(stat)
	if err != nil || u != 250 || s != 37 {
		t.Fatalf("procCPUTicks = %d, %d, %v; want 250, 37", u, s, err)
	}
	if _, _, err := procCPUTicks("4242 (short) S 1 2"); err == nil {
		t.Error("short stat accepted")
	}
}

func TestProcStatusKB(t *testing.T) {
	status := "Name:\tnatif-uploader\nVmPeak:\t 1300000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20000 kB\nThreads:\t9\n"
	if got, err := procStatusKB(status, "VmHWM"); err != nil || got != 23456 {
		t.Fatalf("VmHWM = %d, %v", got, err)
	}
	if _, err := procStatusKB(status, "VmSwap"); err == nil {
		t.Error("missing key accepted")
	}
	if _, err := procStatusKB("VmHWM:\t12 MB\n", "VmHWM"); err == nil {
		t.Error("wrong unit accepted")
	}
}

func TestCommandCalls(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=120,usec=9000,usec_per_call=75.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=3,usec=300,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=4,usec=4,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n"
	m, err := commandCalls(info)
	if err != nil {
		t.Fatal(err)
	}
	if m["evalsha"] != 120 || m["info"] != 3 || m["client|setinfo"] != 4 || len(m) != 3 {
		t.Fatalf("commandCalls = %v", m)
	}
	before := map[string]int64{"evalsha": 20, "info": 1}
	if d := callsDelta(before, m, "info"); d != 104 {
		t.Fatalf("callsDelta = %d, want 104 (100 evalsha + 4 new client|setinfo)", d)
	}
	if _, err := commandCalls("cmdstat_get:usec=1\n"); err == nil {
		t.Error("line without calls accepted")
	}
}

func TestParseGoBench(t *testing.T) {
	out := "goos: linux\ngoarch: amd64\npkg: x/auth\ncpu: Intel(R) Xeon(R) Processor\n" +
		"BenchmarkTokenFastPath-2   \t78430172\t        30.70 ns/op\t       0 B/op\t       0 allocs/op\nPASS\n"
	b, err := parseGoBench(out, "BenchmarkTokenFastPath")
	if err != nil {
		t.Fatal(err)
	}
	if b.N != 78430172 || b.NsPerOp != 30.7 || b.BytesPerOp != 0 || b.AllocsPerOp != 0 {
		t.Fatalf("parseGoBench = %+v", b)
	}
	if _, err := parseGoBench("PASS\n", "BenchmarkTokenFastPath"); err == nil {
		t.Error("missing line accepted")
	}
}

func TestMultipartFileName(t *testing.T) {
	body := "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f000042.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4"
	if got := multipartFileName([]byte(body)); got != "f000042.pdf" {
		t.Fatalf("multipartFileName = %q", got)
	}
	if got := multipartFileName([]byte("--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filena")); got != "" {
		t.Fatalf("truncated header gave %q", got)
	}
}

func TestQueuedTimes(t *testing.T) {
	log := `{"level":"info","component":"watcher","inbox":"/x/inbox","message":"watching inbox"}
{"level":"info","component":"watcher","file":"/x/inbox/lat000001.pdf","sha256":"ab","time":"2026-12-03T22:18:37.207Z","message":"queued"}
{"level":"info","component":"worker","file":"/x/inbox/lat000001.pdf","time":"2026-12-03T22:18:38.001Z","message":"uploaded"}
{"level":"info","component":"watcher","file":"/x/inbox/lat000001.pdf","time":"2026-12-03T22:18:39.000Z","message":"queued"}
not json at all "message":"queued"
`
	m := queuedTimes([]byte(log))
	want := time.Date(2026, 12, 3, 22, 18, 37, 207e6, time.UTC)
	if len(m) != 1 || !m["lat000001.pdf"].Equal(want) {
		t.Fatalf("queuedTimes = %v", m)
	}
}
