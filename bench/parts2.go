package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func (b *bench) partLatency() error {
	c := b.cfg
	if err := b.reset(); err != nil {
		return err
	}
	f, err := newFolders(filepath.Join(b.tmp, "runs", "latency"))
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(f.Inbox))
	d, err := b.startDaemon("latency", "run", f, c.Concurrency)
	if err != nil {
		return err
	}
	defer d.Stop()
	time.Sleep(time.Second) // let the workers go idle, as in a quiet daemon
	base := b.sim.ok.Load()
	lastWrite := make(map[string]time.Time, c.LatencyFiles)
	every := time.Duration(float64(time.Second) / c.LatencyRate)
	tick := time.NewTicker(every)
	for i := 0; i < c.LatencyFiles; i++ {
		<-tick.C
		name := fileName("lat", i)
		if err := writePDF(filepath.Join(f.Inbox, name), fmt.Sprintf("latency %d", i), c.Size); err != nil {
			tick.Stop()
			return err
		}
		lastWrite[name] = time.Now() // after the last write and the close
	}
	tick.Stop()
	if err := b.waitDone(f, c.LatencyFiles, base, stall, d); err != nil {
		return err
	}
	arr := b.sim.Arrivals()
	logText, err := os.ReadFile(d.logPath)
	if err != nil {
		return err
	}
	queued := queuedTimes(logText)
	var lat, detect, wait []float64
	minLat := time.Duration(1 << 62)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for name, w := range lastWrite {
		a, ok := arr[name]
		if !ok {
			return fmt.Errorf("no upload of %s seen by the simulator", name)
		}
		l := a.Sub(w) - c.Settle
		minLat = min(minLat, l)
		lat = append(lat, ms(l))
		if q, ok := queued[name]; ok {
			detect = append(detect, ms(q.Sub(w)-c.Settle))
			wait = append(wait, ms(a.Sub(q)))
		}
	}
	d.Stop()
	if err := b.checkRun("latency", f, c.LatencyFiles, 1); err != nil {
		return err
	}
	if minLat < 0 {
		b.problem("latency: a file was uploaded %v before NATIF_SETTLE had passed since its last write", -minLat)
	}
	pp := func(xs []float64) string {
		return fmt.Sprintf("p50 %.0f ms, p99 %.0f ms", percentile(xs, 50), percentile(xs, 99))
	}
	b.add("latency", fmt.Sprintf("last write to upload start, minus NATIF_SETTLE=%v (%d files of %d bytes written into a running `run` at %.0f/s)",
		c.Settle, c.LatencyFiles, c.Size, c.LatencyRate),
		fmt.Sprintf("%s (min %.0f ms, max %.0f ms)", pp(lat), percentile(lat, 0.0001), percentile(lat, 100)), "—", "—")
	b.add("latency", "of which: last write to queued (the watcher's `queued` log line, ms resolution), minus NATIF_SETTLE", pp(detect), "—", "—")
	b.add("latency", "of which: queued to upload start (asynq pick-up and the worker's checks)", pp(wait), "—", "—")
	return nil
}

func (b *bench) partBigFiles() error {
	c := b.cfg
	dir := filepath.Join(b.tmp, "stage-big")
	defer os.RemoveAll(dir)
	t := time.Now()
	files, err := writeSet(dir, "big", "big", c.BigFiles, c.BigSize, min(c.Writers, 4))
	if err != nil {
		return err
	}
	logf("wrote %d files of %d bytes in %v", c.BigFiles, c.BigSize, time.Since(t).Round(time.Millisecond))
	st, err := b.pipeline("bigfiles", files, max(c.Concurrency, c.BigFiles), dir)
	if err != nil {
		return err
	}
	const goal = 64_000_000 // MB as the product counts it
	b.add("memory", fmt.Sprintf("daemon peak RSS (VmHWM), `run` uploading %d files of %d bytes at once", c.BigFiles, c.BigSize),
		fmt.Sprintf("%s = %.1f MiB (%.0f MB/s, %.1f s)", mb(st.PeakRSS), float64(st.PeakRSS)/(1<<20), float64(int64(c.BigFiles)*c.BigSize)/1e6/st.Dur.Seconds(), st.Dur.Seconds()),
		"< 64 MB (64,000,000 bytes)", metGoal(st.PeakRSS < goal))
	return nil
}

func (b *bench) partBacklog() error {
	c := b.cfg
	n := c.BacklogFiles
	if err := b.reset(); err != nil {
		return err
	}
	f, err := newFolders(filepath.Join(b.tmp, "runs", "backlog"))
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(f.Inbox))
	t := time.Now()
	files, err := writeSet(f.Inbox, "b", "backlog", n, c.BacklogSize, c.Writers)
	if err != nil {
		return err
	}
	logf("wrote %d files of %d bytes in %v", n, c.BacklogSize, time.Since(t).Round(time.Millisecond))
	time.Sleep(c.Settle + time.Second) // every file older than the settle time
	what := fmt.Sprintf("%d files of %d bytes", n, c.BacklogSize)

	// 1. enqueue
	ed, erss, err := b.enqueue("backlog-enqueue", f, n)
	if err != nil {
		return err
	}
	erate := float64(n) / ed.Seconds()
	b.add("backlog", "`enqueue PATH` of "+what+" (hash, ledger check, queue in Redis)",
		fmt.Sprintf("%.0f files/s (%.1f s, peak RSS %s)", erate, ed.Seconds(), mb(erss)), ">= 3,000 files/s", metGoal(erate >= 3000))

	// 2. drained by one `work` process
	cpu0 := time.Duration(0)
	calls0, err := b.redis.Calls()
	if err != nil {
		return err
	}
	base := b.sim.ok.Load()
	t0 := time.Now()
	d, err := b.startDaemon("backlog-work", "work", f, c.Concurrency)
	if err != nil {
		return err
	}
	if err := b.waitDone(f, n, base, stall, d); err != nil {
		d.Stop()
		return err
	}
	wd := time.Since(t0)
	cpu, _ := d.CPU()
	rss, _ := d.PeakRSS()
	calls1, _ := b.redis.Calls()
	d.Stop()
	if err := b.checkRun("backlog-work", f, n, 1); err != nil {
		return err
	}
	b.add("backlog", fmt.Sprintf("queued backlog drained by one `work` (concurrency %d), from its start", c.Concurrency),
		fmt.Sprintf("%.0f files/s (%.1f s; CPU %.2f ms/file; Redis %.1f commands/file)", float64(n)/wd.Seconds(), wd.Seconds(),
			(cpu-cpu0).Seconds()*1000/float64(n), float64(callsDelta(calls0, calls1, "info"))/float64(n)), "—", "—")
	b.add("memory", "`work` peak RSS (VmHWM) draining the queued "+what, mb(rss), "—", "—")

	// 3. the same files back in the inbox, a fresh queue and ledger: `run` over the backlog
	if _, err := collectDone(f.Done, baseNames(files), f.Inbox); err != nil {
		return err
	}
	// A fresh done folder: the first run's sidecars stay where they are (no
	// deletion; see collectDone), and would otherwise meet this run's files.
	f.Done = filepath.Join(filepath.Dir(f.Done), "done-run")
	if err := os.MkdirAll(f.Done, 0o755); err != nil {
		return err
	}
	if err := b.reset(); err != nil {
		return err
	}
	base = b.sim.ok.Load()
	t0 = time.Now()
	d, err = b.startDaemon("backlog-run", "run", f, c.Concurrency)
	if err != nil {
		return err
	}
	if err := b.waitDone(f, n, base, stall, d); err != nil {
		d.Stop()
		return err
	}
	rd := time.Since(t0)
	cpu, _ = d.CPU()
	rss, _ = d.PeakRSS()
	d.Stop()
	if err := b.checkRun("backlog-run", f, n, 1); err != nil {
		return err
	}
	b.add("backlog", fmt.Sprintf("`run` started over an inbox holding the %s (watcher and workers), from its start", what),
		fmt.Sprintf("%.0f files/s (%.1f s; CPU %.2f ms/file)", float64(n)/rd.Seconds(), rd.Seconds(), cpu.Seconds()*1000/float64(n)), "—", "—")
	const goal = 150_000_000
	b.add("memory", "`run` peak RSS (VmHWM) with the "+what+" backlog in its inbox", fmt.Sprintf("%s = %.1f MiB", mb(rss), float64(rss)/(1<<20)),
		"< 150 MB (150,000,000 bytes)", metGoal(rss < goal))
	return nil
}
