//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/natif-uploader/natif-uploader/worker"
)

// end is where a file must end (SPEC sections 4 and 6).
type end int

const (
	endDone   end = iota // uploaded once: done/<rel> with <rel>.natif.json naming its content
	endFailed            // failed/<rel> with <rel>.error.json giving the reason, never uploaded
	endInbox             // left where it is (ineligible, a link), never uploaded
	endGone              // nowhere (deleted by its owner), never uploaded
)

func (e end) String() string { return [...]string{"done", "failed", "left in the inbox", "gone"}[e] }

type expectation struct {
	rel    string // relative to the inbox (or to its allowed root)
	end    end
	sha    string // the content that must (or must not) be uploaded
	reason string // endFailed: a word of the reason
	link   bool   // endInbox: it is a symbolic link and must stay one
}

// TestBadInputCorpus (scenario 5) runs a `watch` and a `work` process on one
// Redis (so that files can be changed between their enqueue and their
// upload) over a corpus of awkward files, and enqueues hostile tasks straight
// into Redis. Every file must end where SPEC sections 4 and 6 say; no file
// outside the roots is ever read (inotify) or uploaded; both daemons keep
// running and still upload a good file at the end.
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	s := newSite(t, siteOptions{redis: true})
	outside := filepath.Join(s.dir, "outside")
	allowed := filepath.Join(s.dir, "allowed")
	for _, d := range []string{outside, allowed, filepath.Join(s.inbox, "big")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const maxSize = 1 << 20
	env := s.with("NATIF_SETTLE=1s", fmt.Sprintf("NATIF_MAX_FILE_SIZE=%d", maxSize), "NATIF_INCOMPLETE_TIMEOUT=6s",
		"NATIF_ALLOWED_ROOTS="+allowed)
	var exp []expectation
	add := func(rel string, e end, content []byte, reason string) {
		exp = append(exp, expectation{rel: rel, end: e, sha: sha(content), reason: reason})
	}
	old := time.Now().Add(-time.Hour)

	// Files outside every root: what hostile tasks and links point at.
	secrets := map[string][]byte{}
	for _, name := range []string{"secret.pdf", "secret2.pdf", "secret3.pdf"} {
		secrets[name] = pdf("outside "+name+" "+randomHex(4), 900)
		if err := os.WriteFile(filepath.Join(outside, name), secrets[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The static corpus, as it is in testdata.
	static := []struct {
		name   string
		end    end
		reason string
	}{
		{"empty.pdf", endFailed, "empty"},
		{"text-named.pdf", endFailed, "unsupported"},
		{"html-named.pdf", endFailed, "unsupported"},
		{"zip-named.pdf", endFailed, "unsupported"},
		// No %%EOF: incomplete, never uploaded; fails after NATIF_INCOMPLETE_TIMEOUT.
		{"truncated.pdf", endFailed, "incomplete"},
		{"truncated.jpg", endFailed, "incomplete"},
		// README: a PDF must end with %%EOF, whitespace and NULs allowed
		// after it; anything else after it reads as still being written.
		{"trailing-garbage.pdf", endFailed, "incomplete"},
		{"trailing-whitespace.pdf", endDone, ""},
		{"complete.jpg", endDone, ""},
		{"tiny.png", endDone, ""},
		{"tiny.gif", endDone, ""},
		{"tiny.tif", endDone, ""},
		{"pdf-named.jpg", endDone, ""}, // the type is the content's, not the name's
	}
	for _, f := range static {
		b, err := os.ReadFile(filepath.Join("testdata", f.name))
		if err != nil {
			t.Fatal(err)
		}
		rel := filepath.Join("static", f.name)
		s.writeFile(rel, b, old)
		add(rel, f.end, b, f.reason)
	}

	// Over NATIF_MAX_FILE_SIZE: a sparse 200 MB file, which must not even be read.
	huge := filepath.Join(s.inbox, "big", "huge.pdf")
	if err := os.WriteFile(huge, []byte("%PDF-1.4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 200<<20); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(huge, old, old)
	exp = append(exp, expectation{rel: "big/huge.pdf", end: endFailed, reason: "NATIF_MAX_FILE_SIZE"})

	// Awkward names and a 50-level deep folder.
	long := strings.Repeat("n", 251) + ".pdf" // 255 bytes, the longest name ext4 allows
	deep := ""
	for i := 1; i <= 50; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	for _, rel := range []string{"names/with space.pdf", "names/ünïcødé €-日本語-invoice.pdf", "names/new\nline.pdf",
		"names/" + long, "names/latin1-\xe9t\xe9.pdf", filepath.Join(deep, "deep.pdf")} {
		b := pdf("name "+rel+" "+randomHex(4), 1000)
		s.writeFile(rel, b, old)
		add(rel, endDone, b, "")
	}

	// Ineligible names: left alone, never uploaded.
	for _, rel := range []string{".hidden.pdf", "~$lock.pdf", "~draft.pdf", "scan.pdf.part", "upload.tmp", "download.crdownload",
		"Thumbs.db", "desktop.ini", ".DS_Store", "@eaDir/thumb.pdf", ".hiddendir/inner.pdf", "#recycle/old.pdf"} {
		b := pdf("ineligible "+rel+" "+randomHex(4), 800)
		p := filepath.Join(s.inbox, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		add(rel, endInbox, b, "")
	}

	// Links out of the inbox: never followed.
	if err := os.Symlink(filepath.Join(outside, "secret.pdf"), filepath.Join(s.inbox, "link-out.pdf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.inbox, "linkdir")); err != nil {
		t.Fatal(err)
	}
	exp = append(exp, expectation{rel: "link-out.pdf", end: endInbox, sha: sha(secrets["secret.pdf"]), link: true},
		expectation{rel: "linkdir", end: endInbox, sha: sha(secrets["secret2.pdf"]), link: true})

	// Same content twice: uploaded once, the other copy is a duplicate.
	dupContent := pdf("duplicate "+randomHex(4), 1100)
	s.writeFile("dup/a.pdf", dupContent, old)
	s.writeFile("dup/b.pdf", dupContent, old)
	add("dup/a.pdf", endDone, dupContent, "")
	add("dup/b.pdf", endDone, dupContent, "")

	// Unreadable. As root (CAP_DAC_OVERRIDE) chmod 000 does not stop
	// reading, so the case cannot be staged here; TestUnreadableFile runs
	// its daemon as nobody for it.
	unreadable := filepath.Join(s.inbox, "unreadable.pdf")
	unreadableContent := pdf("unreadable "+randomHex(4), 900)
	if err := os.WriteFile(unreadable, unreadableContent, 0o000); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(unreadable, 0o000)
	unreadableCase := true
	if f, err := os.Open(unreadable); err == nil {
		f.Close()
		unreadableCase = false
		os.Remove(unreadable)
		t.Logf("unreadable file: uid %d reads a chmod 000 file anyway (CAP_DAC_OVERRIDE); TestUnreadableFile covers the case with its daemon run as nobody", os.Geteuid())
	}

	// Files changed after their enqueue (before any worker runs).
	afterDeleted := pdf("deleted after enqueue "+randomHex(4), 1000)
	afterBigger := pdf("rewritten bigger, first "+randomHex(4), 1000)
	afterSame := pdf("rewritten same size, first "+randomHex(4), 1000)
	s.writeFile("after/deleted.pdf", afterDeleted, old)
	s.writeFile("after/rewritten-bigger.pdf", afterBigger, old)
	s.writeFile("after/rewritten-same.pdf", afterSame, old)

	outsideWatch := watchAccess(t, outside)
	hugeWatch := watchAccess(t, filepath.Join(s.inbox, "big"))

	watch := s.start(env, "watch")

	// 0 bytes, then filled before the settle time ends; and a PDF written in
	// two parts 3 s apart (incomplete in between).
	zero := filepath.Join(s.inbox, "late", "zero-then-filled.pdf")
	_ = os.MkdirAll(filepath.Dir(zero), 0o755)
	if err := os.WriteFile(zero, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	zeroContent := pdf("zero then filled "+randomHex(4), 1000)
	if err := os.WriteFile(zero, zeroContent, 0o644); err != nil {
		t.Fatal(err)
	}
	add("late/zero-then-filled.pdf", endDone, zeroContent, "")
	growing := pdf("growing "+randomHex(4), 3000)
	cut := len(growing) / 2
	if err := os.WriteFile(filepath.Join(s.inbox, "late", "growing.pdf"), growing[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	add("late/growing.pdf", endDone, growing, "")
	grown := make(chan error, 1)
	time.AfterFunc(2500*time.Millisecond, func() {
		grown <- os.WriteFile(filepath.Join(s.inbox, "late", "growing.pdf"), growing, 0o644)
	})

	// Wait for the three "after" files to be queued, then change them.
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: s.redis.Addr})
	defer insp.Close()
	queuedPaths := func() map[string]bool {
		out := map[string]bool{}
		tasks, _ := insp.ListPendingTasks("natif", asynq.PageSize(1000))
		for _, ti := range tasks {
			var p worker.Payload
			if json.Unmarshal(ti.Payload, &p) == nil {
				out[p.Path] = true
			}
		}
		return out
	}
	waitFor(t, 30*time.Second, "the after/ files queued", func() bool {
		q := queuedPaths()
		return q[filepath.Join(s.inbox, "after/deleted.pdf")] && q[filepath.Join(s.inbox, "after/rewritten-bigger.pdf")] &&
			q[filepath.Join(s.inbox, "after/rewritten-same.pdf")]
	}, func() string { return watch.logTail(20) })
	if err := os.Remove(filepath.Join(s.inbox, "after/deleted.pdf")); err != nil {
		t.Fatal(err)
	}
	newBigger := pdf("rewritten bigger, second "+randomHex(4), 1500)
	newSame := []byte(strings.Replace(string(afterSame), "first", "other", 1))
	if len(newSame) != len(afterSame) {
		t.Fatal("same-size rewrite changed the size")
	}
	if err := os.WriteFile(filepath.Join(s.inbox, "after/rewritten-bigger.pdf"), newBigger, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.inbox, "after/rewritten-same.pdf"), newSame, 0o644); err != nil {
		t.Fatal(err)
	}
	add("after/deleted.pdf", endGone, afterDeleted, "")
	add("after/rewritten-bigger.pdf", endDone, newBigger, "")
	add("after/rewritten-same.pdf", endDone, newSame, "")
	neverUploaded := map[string]string{ // contents that must never reach natif
		"after/rewritten-bigger.pdf (first content)": sha(afterBigger),
		"after/rewritten-same.pdf (first content)":   sha(afterSame),
	}
	for name, b := range secrets {
		neverUploaded["outside/"+name] = sha(b)
	}

	// Tasks enqueued straight into Redis: one producer's legitimate task in
	// NATIF_ALLOWED_ROOTS (the control: direct tasks are taken), and hostile ones.
	producerContent := pdf("producer "+randomHex(4), 1000)
	if err := os.MkdirAll(filepath.Join(allowed, "producer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(allowed, "producer", "producer.pdf"), producerContent, 0o644); err != nil {
		t.Fatal(err)
	}
	producerTask, err := worker.NewTask(worker.Payload{Path: filepath.Join(allowed, "producer", "producer.pdf"), Root: allowed,
		Rel: "producer/producer.pdf", Size: int64(len(producerContent)), SHA256: sha(producerContent), Source: "e2e-producer"},
		worker.DefaultTaskOptions())
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: s.redis.Addr})
	defer client.Close()
	if _, err := client.Enqueue(producerTask); err != nil {
		t.Fatal(err)
	}
	secret := func(name string) (string, int64) {
		return sha(secrets[name]), int64(len(secrets[name]))
	}
	payload := func(path, root, rel, secretName string) []byte {
		sum, size := secret(secretName)
		b, _ := json.Marshal(map[string]any{"path": path, "root": root, "rel": rel, "size": size, "sha256": sum, "source": "hostile"})
		return b
	}
	sum3, size3 := secret("secret3.pdf")
	hostile := map[string][]byte{
		"outside-root":    payload(filepath.Join(outside, "secret.pdf"), outside, "secret.pdf", "secret.pdf"),
		"dotdot":          payload(filepath.Join(outside, "secret.pdf"), s.inbox, "../outside/secret.pdf", "secret.pdf"),
		"dotdot-unclean":  payload(s.inbox+"/../outside/secret.pdf", s.inbox, "../outside/secret.pdf", "secret.pdf"),
		"root-is-parent":  payload(filepath.Join(s.dir, "outside", "secret3.pdf"), s.dir, "outside/secret3.pdf", "secret3.pdf"),
		"symlink-file":    payload(filepath.Join(s.inbox, "link-out.pdf"), s.inbox, "link-out.pdf", "secret.pdf"),
		"symlink-dir":     payload(filepath.Join(s.inbox, "linkdir", "secret2.pdf"), s.inbox, "linkdir/secret2.pdf", "secret2.pdf"),
		"malformed-json":  []byte(`{"path": "` + filepath.Join(outside, "secret.pdf") + `", "root": "` + outside + `", "rel": "secret.pdf", "size": 9, "sha256": "`),
		"unknown-field":   []byte(fmt.Sprintf(`{"path":%q,"root":%q,"rel":"secret3.pdf","size":%d,"sha256":%q,"exec":"rm -rf /"}`, filepath.Join(outside, "secret3.pdf"), outside, size3, sum3)),
		"huge":            []byte(fmt.Sprintf(`{"path":%q,"root":%q,"rel":"secret3.pdf","size":%d,"sha256":%q,"source":%q}`, filepath.Join(outside, "secret3.pdf"), outside, size3, sum3, strings.Repeat("A", 1<<20))),
		"not-json-at-all": []byte("\x00\xff\xfe binary garbage \x01"),
	}
	for id, b := range hostile {
		if _, err := client.Enqueue(asynq.NewTask(worker.TaskType, b), asynq.TaskID("hostile-"+id), asynq.Queue("natif"), asynq.MaxRetry(2)); err != nil {
			t.Fatalf("enqueue hostile %s: %v", id, err)
		}
	}

	work := s.start(env, "work")
	if err := <-grown; err != nil {
		t.Fatal(err)
	}

	// Where each file is now, and whether that is where it must end.
	uploaded := func() map[string]int { return s.sim.Stats().UploadsBySHA256 }
	check := func(e expectation, by map[string]int, root, doneRoot string) (bool, string) {
		// Where it is archived: its own name, or a shortened one when that
		// is too long for its sidecars (the 255-byte name).
		arch := worker.ArchiveRel(e.rel)
		in, inErr := os.Lstat(filepath.Join(root, e.rel))
		_, doneErr := os.Lstat(filepath.Join(doneRoot, arch))
		_, failErr := os.Lstat(filepath.Join(s.failed, arch))
		state := fmt.Sprintf("inbox:%v done:%v failed:%v uploads:%d", inErr == nil, doneErr == nil, failErr == nil, by[e.sha])
		switch e.end {
		case endDone:
			side, err := os.ReadFile(filepath.Join(doneRoot, arch+".natif.json"))
			var sc doneSidecar
			if err != nil || json.Unmarshal(side, &sc) != nil {
				return false, state + " (no done sidecar)"
			}
			content, _ := os.ReadFile(filepath.Join(doneRoot, arch))
			ok := inErr != nil && doneErr == nil && sc.SHA256 == e.sha && sha(content) == e.sha && by[e.sha] == 1
			return ok, state + fmt.Sprintf(" sidecar sha %.12s", sc.SHA256)
		case endFailed:
			side, err := os.ReadFile(filepath.Join(s.failed, arch+".error.json"))
			var sc failedSidecar
			if err != nil || json.Unmarshal(side, &sc) != nil {
				return false, state + " (no error sidecar)"
			}
			ok := inErr != nil && failErr == nil && strings.Contains(strings.ToLower(sc.Error), strings.ToLower(e.reason)) && by[e.sha] == 0
			return ok, state + fmt.Sprintf(" reason %q", sc.Error)
		case endInbox:
			ok := inErr == nil && doneErr != nil && failErr != nil && by[e.sha] == 0
			if e.link {
				ok = ok && in.Mode()&os.ModeSymlink != 0
			}
			return ok, state
		default: // endGone
			return inErr != nil && doneErr != nil && failErr != nil && by[e.sha] == 0, state
		}
	}
	producer := expectation{rel: "producer/producer.pdf", end: endDone, sha: sha(producerContent)}
	hostileState := func(id string) (bool, string) {
		ti, err := insp.GetTaskInfo("natif", "hostile-"+id)
		if err != nil {
			return false, err.Error()
		}
		return ti.State == asynq.TaskStateArchived, fmt.Sprintf("%v, last error %q", ti.State, ti.LastErr)
	}
	settled := func() bool {
		by := uploaded()
		for _, e := range exp {
			if ok, _ := check(e, by, s.inbox, s.done); !ok {
				return false
			}
		}
		if ok, _ := check(producer, by, allowed, s.done); !ok {
			return false
		}
		for id := range hostile {
			if ok, _ := hostileState(id); !ok {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		if !watch.alive() || !work.alive() {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	settleTime := time.Since(begin)
	time.Sleep(time.Second)

	by := uploaded()
	bad := 0
	for _, e := range exp {
		if ok, state := check(e, by, s.inbox, s.done); !ok {
			bad++
			t.Errorf("%q: want %v (%s), got %s", e.rel, e.end, e.reason, state)
		}
	}
	if ok, state := check(producer, by, allowed, s.done); !ok {
		bad++
		t.Errorf("the producer's task in NATIF_ALLOWED_ROOTS: want done, got %s", state)
	}
	ids := make([]string, 0, len(hostile))
	for id := range hostile {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ok, state := hostileState(id)
		if !ok {
			bad++
			t.Errorf("hostile task %s: want archived without the file read, got %s", id, state)
		} else {
			t.Logf("hostile task %s: %s", id, state)
		}
	}
	if unreadableCase {
		// No rule says whether an unreadable file waits or fails; it must
		// not be lost, uploaded or reported done.
		_, inErr := os.Lstat(unreadable)
		_, failErr := os.Lstat(filepath.Join(s.failed, "unreadable.pdf.error.json"))
		if (inErr != nil && failErr != nil) || by[sha(unreadableContent)] != 0 || files(s.done)["unreadable.pdf"] {
			bad++
			t.Errorf("unreadable.pdf: want left in the inbox or failed with a reason, never uploaded; in inbox %v, failed %v, uploads %d",
				inErr == nil, failErr == nil, by[sha(unreadableContent)])
		}
	}
	// Nothing reached natif that should not have.
	allowedSums := map[string]bool{producer.sha: true}
	for _, e := range exp {
		if e.end == endDone {
			allowedSums[e.sha] = true
		}
	}
	for sum, n := range by {
		if !allowedSums[sum] {
			what := "unknown content"
			for name, s := range neverUploaded {
				if s == sum {
					what = name
				}
			}
			t.Errorf("natif received %s (%.12s) %d times", what, sum, n)
		} else if n != 1 {
			t.Errorf("natif received content %.12s %d times; want once", sum, n)
		}
	}
	if st := s.sim.Stats(); st.BytesReceived > 1<<20 {
		t.Errorf("natif received %d bytes: the oversized file was sent", st.BytesReceived)
	}
	// Never read: the files outside the roots, and the oversized one.
	if ev := outsideWatch.events(); len(ev) > 0 {
		t.Errorf("files outside the roots were opened or read: %v", ev)
	}
	for _, ev := range hugeWatch.events() {
		if strings.HasSuffix(ev, "ACCESS") {
			t.Errorf("the file over NATIF_MAX_FILE_SIZE was read: %s", ev)
			break
		}
	}
	for name, b := range secrets {
		got, err := os.ReadFile(filepath.Join(outside, name))
		if err != nil || sha(got) != sha(b) {
			t.Errorf("outside/%s was moved or changed: %v", name, err)
		}
	}
	// Duplicate: one of the two copies names the other's document.
	dupMarks := 0
	for _, rel := range []string{"dup/a.pdf", "dup/b.pdf"} {
		b, _ := os.ReadFile(filepath.Join(s.done, rel+".natif.json"))
		var sc doneSidecar
		if json.Unmarshal(b, &sc) == nil && sc.DuplicateOf != "" {
			dupMarks++
		}
	}
	if dupMarks != 1 {
		t.Errorf("%d of the two copies of one content carry duplicate_of; want 1", dupMarks)
	}

	// The daemons survived all of it and still upload.
	if !watch.alive() || !work.alive() {
		t.Fatalf("a daemon died: watch alive %v (%v), work alive %v (%v)\n%s\n%s", watch.alive(), watch.err, work.alive(), work.err,
			watch.logTail(20), work.logTail(20))
	}
	good := pdf("good afterwards "+randomHex(4), 1000)
	s.writeFile("final/good.pdf", good, time.Time{})
	waitFor(t, 30*time.Second, "a good file uploaded after the corpus", func() bool {
		_, err := os.Lstat(filepath.Join(s.done, "final/good.pdf.natif.json"))
		return err == nil
	}, func() string { return work.logTail(20) })
	if !watch.alive() || !work.alive() {
		t.Errorf("a daemon died at the end")
	}
	for _, d := range []*daemon{watch, work} {
		if code := d.stop(20 * time.Second); code != 0 {
			t.Errorf("%s did not stop cleanly: exit %d", d.name, code)
		}
	}
	s.checkNoCrash()
	st := s.sim.Stats()
	figures(t, "files", len(exp)+1, "hostile_tasks", len(hostile), "wrong_ends", bad, "uploads", st.Uploads,
		"outside_reads", len(outsideWatch.events()), "unreadable_case", unreadableCase, "settled", settleTime, "wall", time.Since(begin))
}
