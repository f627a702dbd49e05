package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/app"
	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
	"github.com/natif-uploader/natif-uploader/worker"
)

// demoFile is one sample and where it should end.
type demoFile struct {
	name    string
	content []byte
	want    string // "done" or "failed"
	note    string
}

func (a *cli) demoCommand() *cobra.Command {
	var keep bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See the whole flow on this machine: simulator, embedded queue, sample invoices",
		Long: `Start the natif simulator and the daemon with its embedded queue in a temporary folder, drop a
few generated sample invoices (PDF, JPEG, PNG, a second copy of one PDF, and a text file named
.pdf) into its inbox, wait until every file is uploaded or failed, print where each went and the
token flow, and clean up. Nothing leaves this machine.`,
		Example: `  natif-uploader demo
  natif-uploader demo --keep   # keep the folders to look at the sidecars`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setupLoggerOnly(cmd); err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-level") {
				if _, ok := a.env.LookupEnv("NATIF_LOG_LEVEL"); !ok {
					if err := a.setupLogger("error", ""); err != nil {
						return err
					}
				}
			}
			return a.demo(cmd.Context(), cmd.OutOrStdout(), keep, timeout)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary folders and print where they are")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

func (a *cli) demo(ctx context.Context, out io.Writer, keep bool, timeout time.Duration) error {
	dir, err := os.MkdirTemp("", "natif-uploader-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	sim := fakeapi.New(fakeapi.Options{ProcessingDelay: 500 * time.Millisecond})
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	cfg := config.Default()
	cfg.BaseURL, cfg.Username, cfg.Password = base, "demo", redact.NewSecret("demo")
	cfg.Inboxes = []string{filepath.Join(dir, "inbox")}
	cfg.DoneDir, cfg.FailedDir = filepath.Join(dir, "done"), filepath.Join(dir, "failed")
	cfg.Settle, cfg.Concurrency, cfg.MetricsAddr, cfg.ShutdownTimeout = 300*time.Millisecond, 4, "", 5*time.Second
	for _, d := range []string{cfg.Inboxes[0], cfg.DoneDir, cfg.FailedDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	a.redactor.Pin("demo-key")

	fmt.Fprintf(out, "natif simulator on %s (user demo), embedded queue, inbox %s\n", base, cfg.Inboxes[0])
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- app.Run(runCtx, cfg, app.Roles{Watch: true, Work: true}, app.Options{
			Logger: a.log, Redactor: a.redactor, Ready: func(string) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-runErr:
		return fmt.Errorf("demo daemon: %w", err)
	}

	samples := demoSamples()
	for _, s := range samples {
		if err := os.WriteFile(filepath.Join(cfg.Inboxes[0], s.name), s.content, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "  dropped %-22s %s\n", s.name, s.note)
	}
	deadline := time.Now().Add(timeout)
	ended := func(s demoFile) string {
		switch {
		case fileExists(filepath.Join(cfg.DoneDir, s.name) + worker.DoneSuffix):
			return "done"
		case fileExists(filepath.Join(cfg.FailedDir, s.name) + worker.FailedSuffix):
			return "failed"
		}
		return ""
	}
	for {
		left := 0
		for _, s := range samples {
			if ended(s) == "" {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			<-runErr
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("demo: %d files still in the inbox after %s", left, timeout)}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if err := <-runErr; err != nil {
		return err
	}

	fmt.Fprintln(out, "\nwhere each file went:")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	ok := true
	for _, s := range samples {
		where := ended(s)
		detail := ""
		if where == "done" {
			sc := readJSON(filepath.Join(cfg.DoneDir, s.name) + worker.DoneSuffix)
			detail = "document " + fmt.Sprint(sc["document_id"])
			if dup, has := sc["duplicate_of"]; has {
				detail = "duplicate of " + fmt.Sprint(dup) + ", not uploaded again"
			}
		} else {
			sc := readJSON(filepath.Join(cfg.FailedDir, s.name) + worker.FailedSuffix)
			detail = fmt.Sprint(sc["error"])
		}
		mark := "ok"
		if where != s.want {
			mark, ok = "UNEXPECTED", false
		}
		fmt.Fprintf(tw, "  %s\t%s/\t%s\t%s\n", s.name, where, detail, mark)
	}
	tw.Flush()
	st := sim.Stats()
	fmt.Fprintf(out, "\ntoken flow: %d password grant(s), %d refresh(es), %d reuse detection(s); natif stored %d document(s)\n",
		st.PasswordGrantsOK, st.Refreshes, st.ReuseDetections, st.Uploads)
	if keep {
		fmt.Fprintf(out, "folders kept in %s (done/ holds each file with its .natif.json)\n", dir)
	}
	if !ok {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("demo: a file ended where it should not")}
	}
	return nil
}

func demoSamples() []demoFile {
	invoice := demoPDF("Invoice 2026-0042, ACME Office Supplies", 3)
	return []demoFile{
		{"invoice-2026-0042.pdf", invoice, "done", "a 3-page PDF invoice"},
		{"receipt-coffee.jpg", demoImage(jpeg.Encode), "done", "a JPEG receipt"},
		{"delivery-note.png", demoImage(func(w io.Writer, m image.Image, _ *jpeg.Options) error { return png.Encode(w, m) }), "done", "a PNG delivery note"},
		{"invoice-copy.pdf", invoice, "done", "the same invoice again: a duplicate"},
		{"notes.pdf", []byte("meeting notes, saved with the wrong extension\n"), "failed", "text named .pdf: natif takes it by content"},
	}
}

func demoPDF(title string, pages int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n% " + title + "\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n")
	b.WriteString(fmt.Sprintf("2 0 obj << /Type /Pages /Count %d >> endobj\n", pages))
	for i := range pages {
		b.WriteString(fmt.Sprintf("%d 0 obj << /Type /Page /Parent 2 0 R >> endobj\n", i+3))
	}
	b.WriteString("trailer << /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func demoImage(encode func(io.Writer, image.Image, *jpeg.Options) error) []byte {
	m := image.NewRGBA(image.Rect(0, 0, 64, 32))
	for x := range 64 {
		for y := range 32 {
			m.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 8), 128, 255})
		}
	}
	var b bytes.Buffer
	_ = encode(&b, m, &jpeg.Options{Quality: 80})
	return b.Bytes()
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func readJSON(p string) map[string]any {
	m := map[string]any{}
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}
