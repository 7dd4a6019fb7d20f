package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/strata-run/strata/internal/wire"
)

// Server streams. The server opens a stream on the agent's connection for
// each log read, signal or stats request (the only streams it opens) and
// sends its request as the first frame. A log read is answered with a
// LogHeader and the log file's bytes, and with Follow goes on sending what
// the task appends, until the server ends or resets its side of the
// stream, the session ends, or the agent stops. A signal is answered with
// TaskSignalled, a stats request with TaskStats, a restart with
// TaskRestarted. Each is its own QUIC
// stream, so none of them delays a heartbeat on the control stream.

// logPollEvery is how often a followed log file is checked for new bytes
// and for rotation.
const logPollEvery = 200 * time.Millisecond

// serverStream is a stream the server opened (a *quic.Stream).
type serverStream interface {
	io.ReadWriteCloser
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
	SetReadDeadline(time.Time) error
}

// streamServer answers the streams the server opens.
type streamServer struct {
	dataDir, nodeName string
	signal            func(ctx context.Context, allocID, task, sig string) error
	stats             func(ctx context.Context, allocID, task string) (wire.TaskStats, error)
	restart           func(ctx context.Context, allocID, task string) ([]string, error)
	log               *slog.Logger
	poll              time.Duration // logPollEvery unless a test sets it
	logStreams        atomic.Int64  // log streams being served
}

// serve answers one stream: it reads the request, and answers it. It
// returns once the stream is done with.
func (s *streamServer) serve(ctx context.Context, st serverStream) {
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	t, payload, err := wire.Read(st)
	if err != nil {
		st.CancelRead(0)
		st.CancelWrite(0)
		return
	}
	st.SetReadDeadline(time.Time{})
	switch t {
	case wire.TypeLogRequest:
		var req wire.LogRequest
		if err := wire.Decode(t, payload, &req); err != nil {
			wire.Write(st, wire.TypeLogHeader, wire.LogHeader{Error: err.Error()})
			st.CancelRead(0)
			return
		}
		s.serveLogs(ctx, st, req)
	case wire.TypeSignalTask:
		var req wire.SignalTask
		err := wire.Decode(t, payload, &req)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = s.signal(sctx, req.AllocID, req.Task, req.Signal)
			cancel()
		}
		var ans wire.TaskSignalled
		if err != nil {
			ans.Error = err.Error()
		}
		wire.Write(st, wire.TypeTaskSignalled, ans)
		st.CancelRead(0)
	case wire.TypeStatsRequest:
		var req wire.StatsRequest
		var ans wire.TaskStats
		err := wire.Decode(t, payload, &req)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			ans, err = s.stats(sctx, req.AllocID, req.Task)
			cancel()
		}
		if err != nil {
			ans.Error = err.Error()
		}
		wire.Write(st, wire.TypeTaskStats, ans)
		st.CancelRead(0)
	case wire.TypeRestartTask:
		var req wire.RestartTask
		var ans wire.TaskRestarted
		err := wire.Decode(t, payload, &req)
		if err == nil {
			ans.Tasks, err = s.restart(ctx, req.AllocID, req.Task)
		}
		if err != nil {
			ans.Error = err.Error()
		}
		wire.Write(st, wire.TypeTaskRestarted, ans)
		st.CancelRead(0)
	default:
		wire.Write(st, wire.TypeError, wire.Error{Message: fmt.Sprintf("this agent answers LogRequest, SignalTask, StatsRequest and RestartTask on the streams a server opens, not %s", t)})
		st.CancelRead(0)
	}
}

// serveLogs streams a log. It owns one helper goroutine, which reads st
// until the server ends or resets it and then cancels the stream's
// context; both are gone when it returns.
func (s *streamServer) serveLogs(ctx context.Context, st serverStream, req wire.LogRequest) {
	s.logStreams.Add(1)
	defer s.logStreams.Add(-1)
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
	poll := s.poll
	if poll <= 0 {
		poll = logPollEvery
	}
	if err := s.sendLogs(ctx, req, st, poll); err != nil && ctx.Err() == nil {
		s.log.Debug("log stream ended", "alloc_id", req.AllocID, "task", req.Task, "err", err)
	}
}

// sendLogs writes a LogHeader and the requested log to w: the whole
// current file, or its last TailLines lines; with Follow it then polls
// every poll for appended bytes (following the file across rotation)
// until ctx ends or a write fails.
func (s *streamServer) sendLogs(ctx context.Context, req wire.LogRequest, w io.Writer, poll time.Duration) error {
	path, ok := taskLogPath(s.dataDir, req.AllocID, req.Task, req.Type)
	if !ok {
		return wire.Write(w, wire.TypeLogHeader, wire.LogHeader{Error: fmt.Sprintf("bad log request: allocation %q, task %q, type %q (stdout or stderr)", req.AllocID, req.Task, req.Type)})
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return wire.Write(w, wire.TypeLogHeader, wire.LogHeader{Error: fmt.Sprintf("node %s has no %s log for task %q of allocation %s (has the task started on it?)", s.nodeName, req.Type, req.Task, req.AllocID)})
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
