package main

// Pure helpers: percentiles, /proc parsing, Redis INFO parsing, go test -bench parsing, and the
// file name of a multipart upload. They hold no state and touch nothing, so helpers_test.go
// covers them without a Redis or a simulator.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of xs by the nearest-rank method: the
// smallest value such that at least p % of the values are at or below it. xs need not be
// sorted; it is not modified. NaN for an empty slice.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// procCPUTicks returns utime and stime (clock ticks) from the text of /proc/<pid>/stat. The second
// field (comm) is in parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func procCPUTicks(stat string) (user, sys uint64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat: no ')' in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// After comm: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9) minflt(10)
	// cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15): indexes 11 and 12 here.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("proc stat: %d fields after comm, want at least 13", len(f))
	}
	if user, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("proc stat utime: %w", err)
	}
	if sys, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("proc stat stime: %w", err)
	}
	return user, sys, nil
}

// procStatusKB returns the value of a "Key:   1234 kB" line of /proc/<pid>/status, in kB.
func procStatusKB(status, key string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: malformed %s line %q", key, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("proc status: no %s line", key)
}

// commandCalls parses the "# Commandstats" section of Redis INFO: lines like
// "cmdstat_get:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0"; it returns
// calls by command name ("get", "client|setinfo").
func commandCalls(info string) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		found := false
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "calls" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("commandstats %s: %w", name, err)
			}
			out[strings.TrimPrefix(name, "cmdstat_")] = n
			found = true
		}
		if !found {
			return nil, fmt.Errorf("commandstats: no calls= in %q", line)
		}
	}
	return out, sc.Err()
}

// callsDelta sums after-before over every command except those in skip (the benchmark's own
// INFO calls, for instance).
func callsDelta(before, after map[string]int64, skip ...string) int64 {
	var n int64
	for cmd, a := range after {
		if contains(skip, cmd) {
			continue
		}
		n += a - before[cmd]
	}
	return n
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// goBench is one result line of go test -bench -benchmem.
type goBench struct {
	Name        string
	N           int64
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
}

// parseGoBench finds the line of benchmark name (with or without the -GOMAXPROCS suffix) in
// go test output.
func parseGoBench(out, name string) (goBench, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !(f[0] == name || strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		b := goBench{Name: f[0], BytesPerOp: math.NaN(), AllocsPerOp: math.NaN()}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return b, fmt.Errorf("bench line %q: iterations: %w", sc.Text(), err)
		}
		b.N = n
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return b, fmt.Errorf("bench line %q: %w", sc.Text(), err)
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			}
		}
		if b.NsPerOp == 0 {
			return b, fmt.Errorf("bench line %q: no ns/op", sc.Text())
		}
		return b, nil
	}
	return goBench{}, fmt.Errorf("no result line for %s in the go test output", name)
}

// multipartFileName returns the filename="..." of the first part header in the beginning of a
// multipart body, or "" when the prefix holds none.
func multipartFileName(prefix []byte) string {
	const key = `filename="`
	i := bytes.Index(prefix, []byte(key))
	if i < 0 {
		return ""
	}
	rest := prefix[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// queuedTimes reads a daemon's JSON log and returns, by file base name, the time of its
// first "queued" line (the watcher put the file in the queue).
func queuedTimes(log []byte) map[string]time.Time {
	out := map[string]time.Time{}
	for _, line := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"message":"queued"`)) {
			continue
		}
		var e struct {
			File string `json:"file"`
			Time string `json:"time"`
		}
		if json.Unmarshal(line, &e) != nil || e.File == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			continue
		}
		name := filepath.Base(e.File)
		if _, seen := out[name]; !seen {
			out[name] = t
		}
	}
	return out
}
