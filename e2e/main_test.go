//go:build e2e

// Package e2e is the end-to-end reliability suite (issue 7): the built
// natif-uploader binary, run as an operator runs it, against the natif
// simulator (in this process, on loopback) and private redis-server
// processes, through crashes, Redis restarts, fault storms, rejected
// credentials, an exhausted quota and hostile input.
//
//	cd /work/main && go test -race -count=1 -tags e2e -timeout 15m ./e2e/
//
// Most of the suite's wall time is waiting (asynq's 30 s lease and 1 min
// recoverer after a kill -9, the 1 min account pause before the probe), so
// the tests run in parallel: TestMain raises -test.parallel to 8 unless it
// was given on the command line. E2E_FILES sets the file count of the crash
// tests (default 2000).
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binPath is the natif-uploader binary under test, built once.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	dir, err := os.MkdirTemp("", "natif-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		fmt.Fprintf(os.Stderr, "go env GOMOD: %v\n", err)
		os.Exit(1)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	// Traversable by all: TestUnreadableFile runs the binary as nobody.
	_ = os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "natif-uploader")
	// E2E_RACE=1 builds the daemon with the race detector (slower; a race
	// in a daemon fails its test through checkNoCrash's "DATA RACE").
	args := []string{"build", "-o", binPath}
	if os.Getenv("E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/natif-uploader")...)
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build natif-uploader: %v\n%s", err, b)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
