package edge

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/testutil"
	"github.com/strata-run/strata/internal/wire"
)

func TestTailOffset(t *testing.T) {
	cases := []struct {
		content string
		lines   int
		want    string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{"", 3, ""},
		{"\n\n\n", 2, "\n\n"},
		{strings.Repeat("x", 20000) + "\n" + strings.Repeat("y", 20000) + "\n", 1, strings.Repeat("y", 20000) + "\n"},
	}
	for _, c := range cases {
		off, err := tailOffset(strings.NewReader(c.content), int64(len(c.content)), c.lines)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.content[off:]; got != c.want {
			t.Errorf("tail %d of %.20q = %.20q, want %.20q", c.lines, c.content, got, c.want)
		}
	}
}

// A followed log sends what is appended, follows the file across a
// rotation, and ends when its context does.
func TestSendLogsFollowsAcrossRotation(t *testing.T) {
	a := testAgent(t)
	path, _ := a.taskLogPath("al1", "task", "stdout")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out testutil.Buffer
	done := make(chan error, 1)
	go func() {
		done <- a.sendLogs(ctx, wire.LogRequest{AllocID: "al1", Task: "task", Type: "stdout", Follow: true, TailLines: 1}, &out, 5*time.Millisecond)
	}()
	body := func() string {
		s := out.String()
		_, p, err := wire.Read(strings.NewReader(s)) // the LogHeader frame
		if err != nil {
			return ""
		}
		return s[5+len(p):]
	}
	wait := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); body() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("streamed %q, want %q", body(), want)
			}
		}
	}
	wait("two\n")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("three\n")
	f.Close()
	wait("two\nthree\n")
	// Rotate as wasmhost.LogFile does: rename, then a new file.
	os.Rename(path, path+".1")
	os.WriteFile(path, []byte("four\n"), 0o600)
	wait("two\nthree\nfour\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sendLogs did not return after its context ended")
	}

	// A log that does not exist: an error in the header, naming it.
	var miss bytes.Buffer
	if err := a.sendLogs(context.Background(), wire.LogRequest{AllocID: "al1", Task: "other", Type: "stderr"}, &miss, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	typ, p, _ := wire.Read(&miss)
	var hdr wire.LogHeader
	wire.Decode(typ, p, &hdr)
	if !strings.Contains(hdr.Error, `no stderr log for task "other"`) {
		t.Fatalf("header %+v", hdr)
	}
	if _, ok := a.taskLogPath("../x", "task", "stdout"); ok {
		t.Fatal("a path outside the data dir was accepted")
	}
}
