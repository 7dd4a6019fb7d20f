package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// Log streams. The server opens a stream on the agent's connection for
// each log read (the only streams it opens) and sends a LogRequest; the
// agent answers with a LogHeader and the log file's bytes, and with Follow
// keeps sending what the task appends, until the server ends or resets
// its side of the stream, the session ends, or the agent stops. Each stream
// is its own QUIC stream, so a log never delays a heartbeat on the control
// stream.

// logPollEvery is how often a followed log file is checked for new bytes
// and for rotation.
const logPollEvery = 200 * time.Millisecond

// ActiveLogStreams is how many log streams the agent is serving now.
func (a *Agent) ActiveLogStreams() int { return int(a.logStreams.Load()) }

// acceptStreams serves the streams the server opens on conn until ctx
// ends or the connection closes; it returns once every one has ended.
func (a *Agent) acceptStreams(ctx context.Context, conn *quic.Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveLogStream(ctx, st)
		}()
	}
}

// serveLogStream answers one LogRequest on st. It owns one helper
// goroutine, which reads st until the server ends or resets it and then
// cancels the stream's context; both are gone when it returns.
func (a *Agent) serveLogStream(ctx context.Context, st *quic.Stream) {
	a.logStreams.Add(1)
	defer a.logStreams.Add(-1)
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(st)
	if err != nil {
		st.CancelRead(0)
		st.CancelWrite(0)
		return
	}
	st.SetReadDeadline(time.Time{})
	var req wire.LogRequest
	if t != wire.TypeLogRequest {
		err = fmt.Errorf("expected LogRequest, got %s", t)
	} else {
		err = wire.Decode(t, payload, &req)
	}
	if err != nil {
		wire.Write(st, wire.TypeLogHeader, wire.LogHeader{Error: err.Error()})
		st.CancelRead(0)
		return
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer cancel()
		io.Copy(io.Discard, st) // returns when the server closes or resets its side
	}()
	defer func() {
		st.CancelRead(0)
		<-readerDone
	}()
	stop := context.AfterFunc(ctx, func() { st.CancelWrite(0) })
	defer stop()
	if err := a.sendLogs(ctx, req, st, logPollEvery); err != nil && ctx.Err() == nil {
		a.log.Debug("log stream ended", "alloc_id", req.AllocID, "task", req.Task, "err", err)
	}
}

// taskLogPath is where a task's stdout or stderr is written (see
// wasm_driver.go); ok is false for names that are not plain file names.
func (a *Agent) taskLogPath(allocID, task, typ string) (string, bool) {
	if typ != "stdout" && typ != "stderr" {
		return "", false
	}
	for _, s := range []string{allocID, task} {
		if s == "" || s == "." || s == ".." || filepath.Base(s) != s {
			return "", false
		}
	}
	return filepath.Join(a.cfg.DataDir, "allocs", allocID, "logs", task+"."+typ), true
}

// sendLogs writes a LogHeader and the requested log to w: the whole
// current file, or its last TailLines lines; with Follow it then polls
// every poll for appended bytes (following the file across rotation)
// until ctx ends or a write fails.
func (a *Agent) sendLogs(ctx context.Context, req wire.LogRequest, w io.Writer, poll time.Duration) error {
	path, ok := a.taskLogPath(req.AllocID, req.Task, req.Type)
	if !ok {
		return wire.Write(w, wire.TypeLogHeader, wire.LogHeader{Error: fmt.Sprintf("bad log request: allocation %q, task %q, type %q (stdout or stderr)", req.AllocID, req.Task, req.Type)})
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return wire.Write(w, wire.TypeLogHeader, wire.LogHeader{Error: fmt.Sprintf("node %s has no %s log for task %q of allocation %s (has the task started on it?)", a.cfg.NodeName, req.Type, req.Task, req.AllocID)})
	}
	if err != nil {
		return wire.Write(w, wire.TypeLogHeader, wire.LogHeader{Error: err.Error()})
	}
	defer func() { f.Close() }()
	if req.TailLines > 0 {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		off, err := tailOffset(f, fi.Size(), req.TailLines)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	if err := wire.Write(w, wire.TypeLogHeader, wire.LogHeader{}); err != nil {
		return err
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if !req.Follow {
			return nil
		}
		if rotated(path, f) {
			// The file we read was renamed away: finish it, then read
			// the new one from its start.
			if _, err := io.Copy(w, f); err != nil {
				return err
			}
			if nf, err := os.Open(path); err == nil {
				f.Close()
				f = nf
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// rotated reports whether path no longer names the file f reads.
func rotated(path string, f *os.File) bool {
	cur, err := os.Stat(path)
	if err != nil {
		return false // mid-rotation: look again next time
	}
	open, err := f.Stat()
	return err == nil && !os.SameFile(cur, open)
}

// tailOffset is where the last lines lines of a file of size bytes start;
// a final newline ends the last line rather than starting an empty one.
func tailOffset(f io.ReaderAt, size int64, lines int) (int64, error) {
	if lines <= 0 {
		return 0, nil
	}
	buf := make([]byte, 8<<10)
	seen := 0
	for pos := size; pos > 0; {
		n := min(int64(len(buf)), pos)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' && pos+i != size-1 {
				if seen++; seen == lines {
					return pos + i + 1, nil
				}
			}
		}
	}
	return 0, nil
}
