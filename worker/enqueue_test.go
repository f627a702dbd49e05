package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
)

func TestFileLedgerSurvivesReopenAndCutLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ledger.jsonl")
	l, err := OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l.Put(ctx, Record{SHA256: "a", DocumentID: "doc-a"})
	l.Put(ctx, Record{SHA256: "b", DocumentID: "doc-b"})
	l.Put(ctx, Record{SHA256: "a", DocumentID: "doc-a2"}) // first record wins
	l.Close()
	// A crash cut the next line short.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n{\"sha256\":\"c\",\"docum")
	f.Close()
	l, err = OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r, _ := l.Get(ctx, "a"); r == nil || r.DocumentID != "doc-a" {
		t.Errorf("record a after reopen = %+v, want doc-a", r)
	}
	if r, _ := l.Get(ctx, "c"); r != nil || l.Len() != 2 {
		t.Errorf("cut line read as %+v (len %d), want it skipped", r, l.Len())
	}
	if err := l.Put(ctx, Record{SHA256: "d", DocumentID: "doc-d"}); err != nil {
		t.Fatal(err)
	}
	l2, _ := OpenFileLedger(path)
	defer l2.Close()
	if r, _ := l2.Get(ctx, "d"); r == nil {
		t.Errorf("a record written after a cut line was lost")
	}
}

// A task ID that no longer stands for work is freed: archived (the file
// failed and came back) or completed without an upload.
func TestEnqueuerFreesStaleTaskIDs(t *testing.T) {
	mr := miniredis.RunT(t)
	opt := asynq.RedisClientOpt{Addr: mr.Addr()}
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	ledger := NewMemoryLedger()
	e := &Enqueuer{Client: client, Options: DefaultTaskOptions(), Inspector: insp, Ledger: ledger}
	ctx := context.Background()
	p := Payload{Path: "/in/a.pdf", Root: "/in", Rel: "a.pdf", Size: 3, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	if err := e.Enqueue(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(ctx, p); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("pending task: %v, want a conflict", err)
	}
	if err := insp.ArchiveTask("natif", TaskID(p.SHA256)); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(ctx, p); err != nil {
		t.Fatalf("archived task: %v, want queued again", err)
	}
	info, err := insp.GetTaskInfo("natif", TaskID(p.SHA256))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("after re-enqueue: %+v, %v; want pending", info, err)
	}
}
