package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// writeResults writes RESULTS.md into the output folder.
func (b *bench) writeResults(parts []string) error {
	if err := os.MkdirAll(b.cfg.OutDir, 0o755); err != nil {
		return err
	}
	cores, model := machine()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("# natif-uploader benchmark results")
	p("")
	p("Written by `bench/` (`cd bench && go run .%s`); every figure below comes from that one run.", argsText(b.extra))
	p("")
	p("| | |")
	p("|---|---|")
	p("| date | %s |", b.started.UTC().Format("2006-01-02 15:04 MST"))
	p("| machine | %d cores (runtime.NumCPU), %s, Linux %s, shared with other test runs |", cores, model, strings.TrimSpace(string(kernel)))
	p("| software | %s, redis-server %s (loopback, no persistence), curl |", runtime.Version(), b.redis.Version())
	p("| wall time of the run | %s |", time.Since(b.started).Round(time.Second))
	p("| parts | %s |", strings.Join(parts, ", "))
	p("")
	p("| part | figure | value | goal | met | reproduce |")
	p("|---|---|---|---|---|---|")
	for _, r := range b.results {
		p("| %s | %s | %s | %s | %s | %s |", r.Part, esc(r.Figure), esc(r.Value), esc(r.Goal), r.Met, r.Command)
	}
	p("")
	if len(b.chart) > 0 {
		p("![throughput against concurrency](throughput.png)")
		p("")
		p("Throughput against concurrency, pipeline and bare uploader (`%s`), %d files of %d bytes per point (fewer than the %d of the throughput row, to keep the run short).",
			strings.Trim(b.cmd("chart"), "`"), b.cfg.ChartFiles, b.cfg.Size, b.cfg.Files)
		p("")
	}
	if len(b.problems) > 0 {
		p("## Problems seen during the run")
		p("")
		for _, s := range b.problems {
			p("- %s", s)
		}
		p("")
	}
	p("## How each figure is measured")
	p("")
	for _, s := range methodNotes(b.cfg) {
		p("- %s", s)
	}
	path := filepath.Join(b.cfg.OutDir, "RESULTS.md")
	logf("writing %s", path)
	return os.WriteFile(path, []byte(w.String()), 0o644)
}

func argsText(extra []string) string {
	if len(extra) == 0 {
		return ""
	}
	return " " + strings.Join(extra, " ")
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func methodNotes(c config) []string {
	return []string{
		"**World.** One `go run .` process builds the product (`go build -o $tmp/natif-uploader ../cmd/natif-uploader`), starts a private `redis-server` (`--save \"\" --appendonly no`, free 127.0.0.1 port, temporary folder) and the simulator `fakeapi.New` with zero latency, no faults and no page limits behind `httptest.NewServer` (127.0.0.1). The simulator runs inside the benchmark process, so it shares the machine's cores with whatever is measured (as it would for every contender). Children get an environment without `NATIF_*`, `REDIS_URL` or proxy variables; curl runs with `--noproxy '*'`. Nothing leaves loopback. Before each daemon run Redis is flushed (queue and ledger empty) and the simulator replaced. Each run gets fresh inbox, done and failed folders; the uploaded files are moved back to the staging folder for the next run, but the run folders (with their sidecars) are removed only at exit: deleting thousands of files just before the next run makes ext4's inode allocator skip every recently deleted inode (perf: `recently_deleted` under `__ext4_new_inode`, 10 % of the daemon's samples), a cost a daemon in production does not pay.",
		fmt.Sprintf("**Files.** Valid-looking PDFs: `%%PDF-1.4` header, a unique line (so every file has its own SHA-256), random filler, `\\n%%%%EOF\\n` at the end; exact sizes (100 KB = 100,000 bytes, 100 MB = 100,000,000 bytes, which both `NATIF_MAX_FILE_SIZE=100MB` and the simulator's 100 MB limit accept: both refuse only larger files). Written by %d goroutines.", c.Writers),
		fmt.Sprintf("**Daemon configuration.** `REDIS_URL` (the private Redis), `NATIF_BASE_URL` (the simulator), `NATIF_USERNAME`/`NATIF_PASSWORD` demo/demo, `NATIF_INBOX`, `NATIF_DONE_DIR`, `NATIF_FAILED_DIR` (fresh folders per run), `NATIF_CONCURRENCY=%d`, `NATIF_SETTLE=%v`, `NATIF_MAX_FILE_SIZE=100MB`, `NATIF_METRICS_ADDR` a free loopback port (used to wait for `/readyz`), `NATIF_LOG_FORMAT=json` at level info into a file. Ready means `/readyz` answers 200 and the log says `watching inbox` (run) or `workers started` (work).", c.Concurrency, c.Settle),
		"**Throughput.** Same files for all three, page cache warm. Bare: one password grant, N goroutines, each file streamed as multipart part `file` with a known Content-Length over one shared `http.Transport`, wall time including the login. curl: token from `POST /token?realm=public` (password grant), then `" + curlCommand + "`, wall time of xargs, every answer checked to be 201. Pipeline: `natif-uploader run` started on an empty inbox and waited for; the files are then *dropped into the running daemon* by renaming them from a staging folder on the same file system (a few ms for all); the clock starts before the first rename and stops when every file is in done (simulator's 201 count reached, then the done folder counted, sidecars excluded). So the pipeline figure includes `NATIF_SETTLE`, the watcher, hashing, Redis, the upload, the ledger, the sidecar and the move. Each run checks that no file went to failed, that the simulator accepted each content exactly once, and that there was one password grant. The bare uploader and the pipeline run alternately `-repeat` times (3 by default) and the median run of each is reported with all runs listed; curl runs once (it takes longest). The ratios use the medians. \"TCP connections\" are the connections the simulator accepted (`http.Server.ConnState`).",
		"**Per-file cost.** From the same pipeline run: the daemon's utime+stime from `/proc/<pid>/stat` at the start and the end of the measured interval, divided by the files; Redis commands from `INFO commandstats` (sum of `calls` over every command, the benchmark's own `INFO` excluded) before and after, divided by the files. This includes asynq's background work (heartbeats, the forwarder, and the idle polls of its workers) during the interval.",
		"**Latency.** `run` on an empty inbox, idle for 1 s, then files written straight into the inbox (create, one write, close) at a steady rate. Last write = just after close; upload start = when the simulator's handler received the upload's request (the file is named by the `filename` of its multipart part, read from the first bytes of the body). Latency = upload start - last write - `NATIF_SETTLE`.",
		"**Memory.** Peak RSS is `VmHWM` from `/proc/<pid>/status`, read when all files are in done and before the process is stopped (so it covers its whole life). Large files: `run` with `NATIF_CONCURRENCY` at least the file count, the files renamed into its inbox at once. Backlog: `run` started over an inbox already holding the whole backlog (nothing queued, empty ledger) until it is all in done.",
		"**Backlog.** Files written into the inbox, then (after the settle time) `natif-uploader enqueue INBOX` timed as a whole process (start to exit; peak RSS from its rusage); then one `natif-uploader work` started and timed from its start until every file is in done. Then the same files are moved back into the inbox, Redis flushed, and `run` is started over them (the memory row).",
		"**Scaling.** For 1, 2 and 4 `natif-uploader work` processes (each `NATIF_CONCURRENCY` as above) on one Redis: the files are moved into the inbox and queued with `enqueue` (not timed), then the processes are started one after another (each waited for until ready, the first starts uploading at once); the clock starts before the first process starts and stops when every file is in done. CPU is the processes' whole CPU time including start-up.",
		"**Token manager.** `go test -run XXX -bench TokenFastPath -benchmem ./auth/` in the product module (`BenchmarkTokenFastPath`: 64 goroutines asking a valid token at once), parsed from its output.",
		"**Noise.** Apart from the throughput medians, each figure is a single measurement on a 2-core machine shared with other test runs; the bare uploader in particular varies by a factor of up to 2 between runs (it finishes in about a second). Short runs (the chart's points) vary most.",
	}
}
