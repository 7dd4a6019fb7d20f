package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

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
// rotation, and ends when its context does. On synctest's fake clock: the
// file is polled every 5ms of it.
func TestSendLogsFollowsAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	s := &streamServer{dataDir: dir, nodeName: "edge-1", log: testLoggerDiscard()}
	path, _ := taskLogPath(dir, "al1", "task", "stdout")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var out logBuffer
		done := make(chan error, 1)
		go func() {
			done <- s.sendLogs(ctx, wire.LogRequest{AllocID: "al1", Task: "task", Type: "stdout", Follow: true, TailLines: 1}, &out, 5*time.Millisecond)
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
			for {
				written := out.written.wait()
				if body() == want {
					return
				}
				select {
				case <-written:
				case err := <-done:
					t.Fatalf("sendLogs returned %v having streamed %q, want %q", err, body(), want)
				}
			}
		}
		wait("two\n")
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("three\n")
		f.Close()
		wait("two\nthree\n")
		// Rotate as the task's log file does: rename, then a new file.
		os.Rename(path, path+".1")
		os.WriteFile(path, []byte("four\n"), 0o600)
		wait("two\nthree\nfour\n")
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	// A log that does not exist: an error in the header, naming it.
	var miss bytes.Buffer
	if err := s.sendLogs(context.Background(), wire.LogRequest{AllocID: "al1", Task: "other", Type: "stderr"}, &miss, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	typ, p, _ := wire.Read(&miss)
	var hdr wire.LogHeader
	wire.Decode(typ, p, &hdr)
	if !strings.Contains(hdr.Error, `no stderr log for task "other"`) {
		t.Fatalf("header %+v", hdr)
	}
	if _, ok := taskLogPath(dir, "../x", "task", "stdout"); ok {
		t.Fatal("a path outside the data dir was accepted")
	}
}

// The streams a server opens are answered by their first frame: a signal
// with TaskSignalled, a stats request with TaskStats, a log read with its
// header and bytes; any other frame with an Error naming it.
func TestServerStreams(t *testing.T) {
	dir := t.TempDir()
	path, _ := taskLogPath(dir, "al1", "web", "stdout")
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte("a line\n"), 0o600)
	synctest.Test(t, func(t *testing.T) {
		var signalled []string
		s := &streamServer{dataDir: dir, nodeName: "edge-1", log: testLoggerDiscard(),
			signal: func(_ context.Context, allocID, task, sig string) error {
				signalled = append(signalled, allocID+"/"+task+"/"+sig)
				if sig == "SIGWINCH" {
					return errors.New("no such thing here")
				}
				return nil
			},
			stats: func(_ context.Context, allocID, task string) (wire.TaskStats, error) {
				return wire.TaskStats{AllocID: allocID, Task: task, Measured: []string{wire.MeasuredMemory}, MemoryBytes: 42}, nil
			},
			restart: func(_ context.Context, allocID, task string) ([]string, error) {
				if task == "" {
					return nil, errors.New("nothing runs")
				}
				return []string{allocID + "/" + task}, nil
			},
		}
		ask := func(typ wire.Type, req any, answer wire.Type, v any) {
			t.Helper()
			agent, server := net.Pipe()
			served := make(chan struct{})
			go func() { defer close(served); s.serve(context.Background(), pipeStream{agent}) }()
			wire.Write(server, typ, req)
			if err := wire.Expect(server, answer, v); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			server.Close()
			<-served
		}
		var sig wire.TaskSignalled
		ask(wire.TypeSignalTask, wire.SignalTask{AllocID: "al1", Task: "web", Signal: "SIGHUP"}, wire.TypeTaskSignalled, &sig)
		if sig.Error != "" || !slices.Equal(signalled, []string{"al1/web/SIGHUP"}) {
			t.Fatalf("signal answer %+v, delivered %v", sig, signalled)
		}
		ask(wire.TypeSignalTask, wire.SignalTask{AllocID: "al1", Task: "web", Signal: "SIGWINCH"}, wire.TypeTaskSignalled, &sig)
		if sig.Error != "no such thing here" {
			t.Fatalf("a refused signal's answer %+v", sig)
		}
		var st wire.TaskStats
		ask(wire.TypeStatsRequest, wire.StatsRequest{AllocID: "al1", Task: "web"}, wire.TypeTaskStats, &st)
		if st.MemoryBytes != 42 || st.Task != "web" || st.Error != "" {
			t.Fatalf("stats answer %+v", st)
		}
		var rs wire.TaskRestarted
		ask(wire.TypeRestartTask, wire.RestartTask{AllocID: "al1", Task: "web"}, wire.TypeTaskRestarted, &rs)
		if rs.Error != "" || !slices.Equal(rs.Tasks, []string{"al1/web"}) {
			t.Fatalf("restart answer %+v", rs)
		}
		rs = wire.TaskRestarted{}
		ask(wire.TypeRestartTask, wire.RestartTask{AllocID: "al1"}, wire.TypeTaskRestarted, &rs)
		if rs.Error != "nothing runs" || len(rs.Tasks) != 0 {
			t.Fatalf("a refused restart's answer %+v", rs)
		}
		var hdr wire.LogHeader
		agent, server := net.Pipe()
		go s.serve(context.Background(), pipeStream{agent})
		wire.Write(server, wire.TypeLogRequest, wire.LogRequest{AllocID: "al1", Task: "web", Type: "stdout"})
		if err := wire.Expect(server, wire.TypeLogHeader, &hdr); err != nil || hdr.Error != "" {
			t.Fatalf("log header %+v, %v", hdr, err)
		}
		if b, _ := io.ReadAll(server); string(b) != "a line\n" {
			t.Fatalf("log bytes %q", b)
		}
		var refusal *wire.Refusal
		err := func() error {
			agent, server := net.Pipe()
			defer server.Close()
			go s.serve(context.Background(), pipeStream{agent})
			wire.Write(server, wire.TypeHeartbeat, wire.Heartbeat{})
			var v struct{}
			return wire.Expect(server, wire.TypeLogHeader, &v)
		}()
		if !errors.As(err, &refusal) || !strings.Contains(refusal.Message, "not Heartbeat") {
			t.Fatalf("an unknown request: %v", err)
		}
		synctest.Wait()
	})
}
