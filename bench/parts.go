package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const stall = 2 * time.Minute

// runStats are what one daemon run measured.
type runStats struct {
	N      int
	Dur    time.Duration
	CPU    time.Duration // of the daemon(s) during Dur
	CPUSys time.Duration // the system part of CPU
	Conns  int64         // TCP connections the simulator accepted during Dur
	ByCmd  map[string]int64
	// First is when the first upload reached the simulator, counted from the start of the
	// clock; Span from the first upload's arrival to the last one's.
	First, Span time.Duration
	Calls       int64 // Redis commands during Dur, the benchmark's INFO excluded
	PeakRSS     int64 // VmHWM of the first daemon, read before it stopped
}

func (r runStats) rate() float64 { return float64(r.N) / r.Dur.Seconds() }

// pipeline starts `natif-uploader run` on an empty inbox, waits until it watches, then renames
// files into its inbox and measures until every one is in done. The clock starts just before
// the first rename. The files are moved back to dir afterwards.
func (b *bench) pipeline(name string, files []string, conc int, dir string) (runStats, error) {
	if err := b.reset(); err != nil {
		return runStats{}, err
	}
	f, err := newFolders(filepath.Join(b.tmp, "runs", name))
	if err != nil {
		return runStats{}, err
	}
	// The run folder stays until exit (see collectDone).
	d, err := b.startDaemon(name, "run", f, conc)
	if err != nil {
		return runStats{}, err
	}
	defer d.Stop()
	st, err := b.measure(f, len(files), []*daemon{d}, func() error {
		_, err := moveAll(files, f.Inbox)
		return err
	})
	if err != nil {
		return st, err
	}
	d.Stop()
	if err := b.checkRun(name, f, len(files), 1); err != nil {
		return st, err
	}
	_, err = collectDone(f.Done, baseNames(files), dir)
	return st, err
}

// measure takes the daemons' CPU and Redis calls, runs drop (which puts files where the
// daemons find them), and waits until n files are in done.
func (b *bench) measure(f folders, n int, ds []*daemon, drop func() error) (runStats, error) {
	st := runStats{N: n}
	calls0, err := b.redis.Calls()
	if err != nil {
		return st, err
	}
	cpu0 := make([]time.Duration, len(ds))
	sys0 := make([]time.Duration, len(ds))
	for i, d := range ds {
		u, s, err := d.CPUSplit()
		if err != nil {
			return st, err
		}
		cpu0[i], sys0[i] = u+s, s
	}
	base, conns0 := b.sim.ok.Load(), b.sim.conns.Load()
	t0 := time.Now()
	if drop != nil {
		if err := drop(); err != nil {
			return st, err
		}
	}
	if err := b.waitDone(f, n, base, stall, ds...); err != nil {
		return st, err
	}
	st.Dur = time.Since(t0)
	var first, last time.Time
	for _, a := range b.sim.Arrivals() {
		if a.Before(t0) {
			continue
		}
		if first.IsZero() || a.Before(first) {
			first = a
		}
		if a.After(last) {
			last = a
		}
	}
	if !first.IsZero() {
		st.First, st.Span = first.Sub(t0), last.Sub(first)
	}
	st.Conns = b.sim.conns.Load() - conns0
	for i, d := range ds {
		u, s, err := d.CPUSplit()
		if err != nil {
			return st, err
		}
		st.CPU += u + s - cpu0[i]
		st.CPUSys += s - sys0[i]
	}
	calls1, err := b.redis.Calls()
	if err != nil {
		return st, err
	}
	st.Calls = callsDelta(calls0, calls1, "info")
	st.ByCmd = map[string]int64{}
	for cmd, n := range calls1 {
		if d := n - calls0[cmd]; d > 0 && cmd != "info" {
			st.ByCmd[cmd] = d
		}
	}
	if st.PeakRSS, err = ds[0].PeakRSS(); err != nil {
		return st, err
	}
	return st, nil
}

// checkRun reports files in failed and duplicate uploads at the simulator.
func (b *bench) checkRun(name string, f folders, n, processes int) error {
	if failed, _ := countFiles(f.Failed); failed > 0 {
		return fmt.Errorf("%s: %d files in failed", name, failed)
	}
	s := b.sim.fa.Stats()
	if s.Uploads != int64(n) {
		b.problem("%s: the simulator accepted %d uploads for %d files", name, s.Uploads, n)
	}
	for sha, c := range s.UploadsBySHA256 {
		if c > 1 {
			b.problem("%s: content %s… uploaded %d times", name, sha[:12], c)
		}
	}
	if s.PasswordGrantsOK > int64(processes) || s.ReuseDetections > 0 {
		b.problem("%s: %d password grants, %d refresh-token reuses", name, s.PasswordGrantsOK, s.ReuseDetections)
	}
	return nil
}

func mb(bytes int64) string { return fmt.Sprintf("%.1f MB", float64(bytes)/1e6) }

func metGoal(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (b *bench) partToken() error {
	cmd := exec.Command("go", "test", "-run", "XXX", "-bench", "TokenFastPath", "-benchmem", "./auth/")
	cmd.Dir = b.product
	cmd.Env = childEnv(nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench TokenFastPath: %w\n%s", err, out)
	}
	r, err := parseGoBench(string(out), "BenchmarkTokenFastPath")
	if err != nil {
		return err
	}
	cmdText := "`go test -run XXX -bench TokenFastPath -benchmem ./auth/` (product module)"
	b.results = append(b.results, result{"token", "token manager fast path, 64 goroutines",
		fmt.Sprintf("%.1f ns/op, %.0f B/op, %.0f allocs/op", r.NsPerOp, r.BytesPerOp, r.AllocsPerOp),
		"— (no goal set)", "—", cmdText + " or " + b.cmd("token")})
	logf("token: %.1f ns/op %.0f allocs/op", r.NsPerOp, r.AllocsPerOp)
	return nil
}

func (b *bench) partThroughput() error {
	c := b.cfg
	n := len(b.tpFiles)
	// The bare uploader and the pipeline alternate, c.Repeat times each; the median run of
	// each is reported (the machine is shared, single runs vary). curl runs once: it is slow.
	var bares []float64
	var bareConns int64
	var pipes []runStats
	for r := 0; r < c.Repeat; r++ {
		if err := b.reset(); err != nil {
			return err
		}
		bd, err := bareUpload(b.sim.URL, b.tpFiles, c.Concurrency)
		if err != nil {
			return fmt.Errorf("bare uploader: %w", err)
		}
		bares = append(bares, float64(n)/bd.Seconds())
		bareConns = b.sim.conns.Load()
		st, err := b.pipeline(fmt.Sprintf("throughput-%d", r+1), b.tpFiles, c.Concurrency, b.stage)
		if err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		pipes = append(pipes, st)
		logf("throughput run %d: bare %.0f files/s, pipeline %.0f files/s", r+1, bares[r], st.rate())
	}
	if err := b.reset(); err != nil {
		return err
	}
	curlDur, err := curlUpload(b.sim.URL, b.tmp, b.tpFiles, c.Concurrency)
	curl := float64(n) / curlDur.Seconds()
	curlConns := b.sim.conns.Load()
	if err != nil {
		b.problem("curl baseline: %v", err)
		curl = 0
	}
	sort.Float64s(bares)
	sort.Slice(pipes, func(i, j int) bool { return pipes[i].rate() < pipes[j].rate() })
	bare := bares[len(bares)/2]
	st := pipes[len(pipes)/2]
	pipe := st.rate()
	runs := func(xs []float64) string {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprintf("%.0f", x))
		}
		return strings.Join(s, ", ")
	}
	var pipeRates []float64
	for _, p := range pipes {
		pipeRates = append(pipeRates, p.rate())
	}
	what := fmt.Sprintf("%d files of %d bytes, concurrency %d", n, c.Size, c.Concurrency)
	b.add("throughput", "bare Go uploader ("+what+")", fmt.Sprintf("%.0f files/s (median of %d runs: %s; %d TCP connections per run)", bare, len(bares), runs(bares), bareConns), "reference", "—")
	b.add("throughput", "xargs -P16 curl ("+what+")", fmt.Sprintf("%.0f files/s (%.1f s, one run; %d TCP connections)", curl, curlDur.Seconds(), curlConns), "reference", "—")
	b.add("throughput", "pipeline: `run`, files renamed into its inbox until all are in done ("+what+", settle "+c.Settle.String()+")",
		fmt.Sprintf("%.0f files/s (median of %d runs: %s; %.2f s; %d TCP connections)", pipe, len(pipes), runs(pipeRates), st.Dur.Seconds(), st.Conns), "—", "—")
	b.add("throughput", "pipeline, median run: clock start to the first upload's arrival; rate from the first to the last upload's arrival",
		fmt.Sprintf("%.2f s; %.0f files/s", st.First.Seconds(), float64(n-1)/st.Span.Seconds()), "—", "—")
	b.add("throughput", "ratio pipeline / bare", fmt.Sprintf("%.2f", pipe/bare), ">= 0.8", metGoal(pipe/bare >= 0.8))
	b.add("throughput", "ratio curl / bare", fmt.Sprintf("%.2f", curl/bare), "pipeline well ahead of curl, read as pipeline / curl >= 1.5", metGoal(curl > 0 && pipe/curl >= 1.5))
	b.add("throughput", "ratio pipeline / curl", fmt.Sprintf("%.2f", pipe/curl), "(same goal)", metGoal(curl > 0 && pipe/curl >= 1.5))
	b.add("per-file", "daemon CPU (user+sys) per uploaded file (median pipeline run)", fmt.Sprintf("%.2f ms (%.2f s for %d files, %.0f %% of it system time)", st.CPU.Seconds()*1000/float64(n), st.CPU.Seconds(), n, 100*st.CPUSys.Seconds()/st.CPU.Seconds()), "—", "—")
	b.add("per-file", "Redis commands per file (INFO commandstats, all commands but the benchmark's INFO)", fmt.Sprintf("%.1f (%d in total; per file: %s)", float64(st.Calls)/float64(n), st.Calls, topCommands(st.ByCmd, n, 8)), "—", "—")
	b.add("per-file", "daemon peak RSS during the throughput run", mb(st.PeakRSS), "—", "—")
	return nil
}

func (b *bench) partChart() error {
	files := b.tpFiles[:b.cfg.ChartFiles]
	for _, conc := range []int{1, 4, 16, 64} {
		if err := b.reset(); err != nil {
			return err
		}
		bd, err := bareUpload(b.sim.URL, files, conc)
		if err != nil {
			return fmt.Errorf("bare uploader, concurrency %d: %w", conc, err)
		}
		st, err := b.pipeline(fmt.Sprintf("chart-%d", conc), files, conc, b.stage)
		if err != nil {
			return fmt.Errorf("pipeline, concurrency %d: %w", conc, err)
		}
		p := chartPoint{Conc: conc, Bare: float64(len(files)) / bd.Seconds(), Pipe: st.rate()}
		b.chart = append(b.chart, p)
		b.add("chart", fmt.Sprintf("concurrency %d: pipeline / bare (%d files of %d bytes)", conc, len(files), b.cfg.Size),
			fmt.Sprintf("%.0f / %.0f files/s (%.2f)", p.Pipe, p.Bare, p.Pipe/p.Bare), "—", "—")
	}
	return drawChart(b.chart, filepath.Join(b.cfg.OutDir, "throughput.png"), len(b.tpFiles[:b.cfg.ChartFiles]), b.cfg.Size)
}

var queuedRE = regexp.MustCompile(`queued (\d+),`)

// enqueue runs `natif-uploader enqueue PATH` and returns its wall time and peak RSS.
func (b *bench) enqueue(name string, f folders, n int) (time.Duration, int64, error) {
	cmd := exec.Command(b.bin, "enqueue", f.Inbox)
	cmd.Dir = b.tmp
	cmd.Env = childEnv(b.productEnv(f, b.cfg.Concurrency, ""))
	logPath := filepath.Join(b.logDir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return 0, 0, err
	}
	defer lf.Close()
	cmd.Stderr = lf
	t := time.Now()
	out, err := cmd.Output()
	d := time.Since(t)
	if err != nil {
		return d, 0, fmt.Errorf("enqueue: %w: %s\n%s", err, out, tail(logPath, 10))
	}
	m := queuedRE.FindSubmatch(out)
	if m == nil {
		return d, 0, fmt.Errorf("enqueue: unexpected output %q", out)
	}
	if q, _ := strconv.Atoi(string(m[1])); q != n {
		return d, 0, fmt.Errorf("enqueue queued %d of %d files: %s", q, n, out)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024
	}
	return d, rss, nil
}

func (b *bench) partScaling() error {
	files := b.tpFiles[:b.cfg.ScaleFiles]
	var one float64
	for _, k := range []int{1, 2, 4} {
		if err := b.reset(); err != nil {
			return err
		}
		name := fmt.Sprintf("scale-%d", k)
		f, err := newFolders(filepath.Join(b.tmp, "runs", name))
		if err != nil {
			return err
		}
		in, err := moveAll(files, f.Inbox)
		if err != nil {
			return err
		}
		if _, _, err := b.enqueue(name+"-enqueue", f, len(in)); err != nil {
			return err
		}
		var ds []*daemon
		stopAll := func() {
			for _, d := range ds {
				d.Stop()
			}
		}
		// The clock starts before the first process starts; every process starts and is
		// waited for in turn (each begins uploading at once).
		calls0, err := b.redis.Calls()
		if err != nil {
			return err
		}
		base := b.sim.ok.Load()
		t0 := time.Now()
		for i := 0; i < k; i++ {
			d, err := b.startDaemon(fmt.Sprintf("%s-work%d", name, i), "work", f, b.cfg.Concurrency)
			if err != nil {
				stopAll()
				return err
			}
			ds = append(ds, d)
		}
		if err := b.waitDone(f, len(files), base, stall, ds...); err != nil {
			stopAll()
			return err
		}
		dur := time.Since(t0)
		var cpu time.Duration
		for _, d := range ds {
			c, _ := d.CPU()
			cpu += c
		}
		calls1, _ := b.redis.Calls()
		stopAll()
		if err := b.checkRun(name, f, len(files), k); err != nil {
			return err
		}
		if _, err := collectDone(f.Done, baseNames(files), b.stage); err != nil {
			return err
		}
		rate := float64(len(files)) / dur.Seconds()
		if k == 1 {
			one = rate
		}
		b.add("scaling", fmt.Sprintf("%d `work` process(es) × concurrency %d, %d files of %d bytes queued by `enqueue`", k, b.cfg.Concurrency, len(files), b.cfg.Size),
			fmt.Sprintf("%.0f files/s (%.2f× of 1 process; CPU %.2f ms/file, Redis %.1f commands/file)", rate, rate/one,
				cpu.Seconds()*1000/float64(len(files)), float64(callsDelta(calls0, calls1, "info"))/float64(len(files))),
			"—", "—")
	}
	return nil
}

// topCommands lists the k most called commands with their calls per file.
func topCommands(by map[string]int64, files, k int) string {
	type kv struct {
		cmd string
		n   int64
	}
	var all []kv
	for c, n := range by {
		all = append(all, kv{c, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].cmd < all[j].cmd })
	var parts []string
	for i, e := range all {
		if i == k {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", e.cmd, float64(e.n)/float64(files)))
	}
	return strings.Join(parts, ", ")
}
