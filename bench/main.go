// Command bench measures natif-uploader end to end on this machine, against a private
// redis-server and the natif simulator on loopback, and writes RESULTS.md and throughput.png.
//
//	cd bench && go run .            # the sizes (about 6 minutes on 2 cores; make bench)
//	cd bench && go run . -quick     # small sizes, output in bench/out/
//	cd bench && go run . -only throughput,latency
//
// See RESULTS.md for what each part measures and how.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

type config struct {
	Quick        bool
	Only         string
	OutDir       string
	Product      string
	Keep         bool
	Files        int
	Size         int64
	Concurrency  int
	Settle       time.Duration
	LatencyFiles int
	LatencyRate  float64
	BigFiles     int
	BigSize      int64
	BacklogFiles int
	BacklogSize  int64
	ScaleFiles   int
	ChartFiles   int
	Writers      int
	Repeat       int
	LogLevel     string
}

var allParts = []string{"token", "throughput", "chart", "scaling", "latency", "bigfiles", "backlog"}

func main() {
	var c config
	flag.BoolVar(&c.Quick, "quick", false, "small sizes for a quick check (defaults below are the issue's); output goes to out/")
	flag.StringVar(&c.Only, "only", "", "comma-separated parts to run: "+strings.Join(allParts, ","))
	flag.StringVar(&c.OutDir, "out", "", "folder for RESULTS.md and throughput.png (default: . for a full default run, else out/)")
	flag.StringVar(&c.Product, "product", "..", "the product module's folder")
	flag.BoolVar(&c.Keep, "keep", false, "keep the temporary folder (files, logs, redis) at the end")
	flag.IntVar(&c.Files, "files", 5000, "throughput: files dropped into the inbox")
	flag.Int64Var(&c.Size, "size", 100_000, "throughput: bytes per file")
	flag.IntVar(&c.Concurrency, "concurrency", 16, "NATIF_CONCURRENCY and the baselines' parallelism")
	flag.DurationVar(&c.Settle, "settle", 200*time.Millisecond, "NATIF_SETTLE")
	flag.IntVar(&c.LatencyFiles, "latency-files", 200, "latency: files dropped into a running daemon")
	flag.Float64Var(&c.LatencyRate, "latency-rate", 20, "latency: files per second")
	flag.IntVar(&c.BigFiles, "big-files", 16, "memory: large files uploaded at once")
	flag.Int64Var(&c.BigSize, "big-size", 100_000_000, "memory: bytes per large file (100 MB = both limits)")
	flag.IntVar(&c.BacklogFiles, "backlog-files", 100_000, "backlog: files")
	flag.Int64Var(&c.BacklogSize, "backlog-size", 10_000, "backlog: bytes per file")
	flag.IntVar(&c.ScaleFiles, "scale-files", 5000, "scaling: files per point (of the throughput set)")
	flag.IntVar(&c.ChartFiles, "chart-files", 2000, "chart: files per point (of the throughput set)")
	flag.IntVar(&c.Writers, "writers", 4, "goroutines writing test files")
	flag.StringVar(&c.LogLevel, "log-level", "info", "NATIF_LOG_LEVEL of the product processes")
	flag.IntVar(&c.Repeat, "repeat", 3, "throughput: runs of the bare uploader and of the pipeline (the median is reported)")
	flag.Parse()

	explicit := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if c.Quick {
		quick := map[string]func(){
			"files": func() { c.Files = 500 }, "latency-files": func() { c.LatencyFiles = 40 },
			"big-size": func() { c.BigSize = 10_000_000 }, "backlog-files": func() { c.BacklogFiles = 5000 },
			"scale-files": func() { c.ScaleFiles = 500 }, "chart-files": func() { c.ChartFiles = 300 },
			"repeat": func() { c.Repeat = 1 },
		}
		for name, set := range quick {
			if !explicit[name] {
				set()
			}
		}
	}
	c.Repeat = max(c.Repeat, 1)
	c.ScaleFiles = min(c.ScaleFiles, c.Files)
	c.ChartFiles = min(c.ChartFiles, c.Files)
	parts := allParts
	if c.Only != "" {
		parts = strings.Split(c.Only, ",")
		for _, p := range parts {
			if !contains(allParts, p) {
				fmt.Fprintf(os.Stderr, "bench: unknown part %q (parts: %s)\n", p, strings.Join(allParts, ","))
				os.Exit(2)
			}
		}
	}
	if c.OutDir == "" {
		c.OutDir = "."
		if c.Quick || c.Only != "" || len(explicit) > 0 {
			c.OutDir = "out"
		}
	}
	// The flags that change sizes, for the reproduce commands.
	var extra []string
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "only" && f.Name != "out" && f.Name != "keep" && f.Name != "product" {
			if f.Value.String() == "true" {
				extra = append(extra, "-"+f.Name)
			} else {
				extra = append(extra, "-"+f.Name+"="+f.Value.String())
			}
		}
	})
	sort.Strings(extra)

	b, err := newBench(c, extra)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	err = b.run(parts)
	b.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one row of RESULTS.md.
type result struct {
	Part, Figure, Value, Goal, Met, Command string
}

type bench struct {
	cfg     config
	extra   []string
	tmp     string
	logDir  string
	bin     string
	product string
	redis   *redisServer
	sim     *sim
	results []result
	chart   []chartPoint
	started time.Time

	current  string   // the part running, for the reproduce commands
	stage    string   // the throughput set lives here between runs
	tpFiles  []string // its paths
	problems []string
}

func newBench(c config, extra []string) (*bench, error) {
	product, err := filepath.Abs(c.Product)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(product, "cmd", "natif-uploader")); err != nil {
		return nil, fmt.Errorf("-product %s: not the product module (%w)", c.Product, err)
	}
	tmp, err := os.MkdirTemp("", "natif-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: c, extra: extra, tmp: tmp, logDir: filepath.Join(tmp, "logs"), product: product, started: time.Now()}
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return nil, err
	}
	b.stage = filepath.Join(tmp, "stage")
	b.bin = filepath.Join(tmp, "natif-uploader")
	logf("building the product: go build -o %s ../cmd/natif-uploader", b.bin)
	if err := buildProduct(product, b.bin); err != nil {
		return b, err
	}
	logf("starting redis-server")
	if b.redis, err = startRedis(filepath.Join(tmp, "redis")); err != nil {
		return b, err
	}
	b.sim = newSim()
	logf("temporary folder %s; redis %s; simulator %s", tmp, b.redis.URL, b.sim.URL)
	return b, nil
}

func (b *bench) close() {
	if b.sim != nil {
		b.sim.Close()
	}
	if b.redis != nil {
		b.redis.Stop()
	}
	if b.cfg.Keep {
		logf("kept %s", b.tmp)
	} else {
		_ = os.RemoveAll(b.tmp)
	}
}

// resetSim replaces the simulator (fresh counters and documents) and empties Redis.
func (b *bench) reset() error {
	b.sim.Close()
	b.sim = newSim()
	return b.redis.Flush()
}

func (b *bench) cmd(part string) string {
	s := "cd bench && go run . -only " + part
	if len(b.extra) > 0 {
		s += " " + strings.Join(b.extra, " ")
	}
	return "`" + s + "`"
}

func (b *bench) add(part, figure, value, goal, met string) {
	b.results = append(b.results, result{part, figure, value, goal, met, b.cmd(b.current)})
	logf("%-11s %s: %s %s %s", part, figure, value, goal, met)
}

func (b *bench) problem(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.problems = append(b.problems, s)
	logf("PROBLEM: %s", s)
}

func (b *bench) run(parts []string) error {
	needSet := contains(parts, "throughput") || contains(parts, "chart") || contains(parts, "scaling")
	if needSet {
		t := time.Now()
		var err error
		b.tpFiles, err = writeSet(b.stage, "f", "throughput", b.cfg.Files, b.cfg.Size, b.cfg.Writers)
		if err != nil {
			return err
		}
		logf("wrote %d files of %d bytes in %v", b.cfg.Files, b.cfg.Size, time.Since(t).Round(time.Millisecond))
	}
	steps := map[string]func() error{
		"token": b.partToken, "throughput": b.partThroughput, "chart": b.partChart, "scaling": b.partScaling,
		"latency": b.partLatency, "bigfiles": b.partBigFiles, "backlog": b.partBacklog,
	}
	var failed []string
	for _, p := range allParts { // always in this order
		if !contains(parts, p) {
			continue
		}
		logf("== %s", p)
		b.current = p
		t := time.Now()
		if err := steps[p](); err != nil {
			b.problem("part %s did not complete: %v", p, err)
			failed = append(failed, p)
		}
		logf("== %s took %v", p, time.Since(t).Round(time.Second))
	}
	if err := b.writeResults(parts); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("parts that did not complete: %s (see %s)", strings.Join(failed, ", "), filepath.Join(b.cfg.OutDir, "RESULTS.md"))
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func machine() (cores int, model string) {
	model = "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return runtime.NumCPU(), model
}
