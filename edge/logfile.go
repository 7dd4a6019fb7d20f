package edge

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// A task's stdout and stderr are the agent's: whatever the driver (a wasm
// instance's stdio, a container's log stream), they are written to
// <DataDir>/allocs/<alloc ID>/logs/<task>.stdout and .stderr, rotated by
// size, and read back by log streams (logs.go).

// Task log sizes, Nomad's: 10 files of 10 MiB.
const (
	taskLogMaxBytes = 10 << 20
	taskLogKeep     = 9
)

// logFile is a task's stdout or stderr on disk, rotated by size: when a
// write would take the file past maxBytes, path.<keep> is dropped, every
// path.N becomes path.N+1, path becomes path.1 and a new path is started. At
// most (keep+1)×maxBytes of disk is used: a single write larger than maxBytes
// keeps only its last maxBytes. It is safe for concurrent use.
type logFile struct {
	path     string
	maxBytes int64
	keep     int

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation: reopened on the next write
	size   int64
	closed bool
}

// openLogFile opens (appending to) or creates path, its directory included.
// maxBytes <= 0 means taskLogMaxBytes, keep < 0 taskLogKeep (0 keeps no
// old file: rotation truncates).
func openLogFile(path string, maxBytes int64, keep int) (*logFile, error) {
	if maxBytes <= 0 {
		maxBytes = taskLogMaxBytes
	}
	if keep < 0 {
		keep = taskLogKeep
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("edge: log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("edge: log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("edge: log file: %w", err)
	}
	return &logFile{path: path, maxBytes: maxBytes, keep: keep, f: f, size: fi.Size()}, nil
}

// Write implements io.Writer. It reports p as written in full even when only
// its tail is kept (see logFile), so that a task's write never fails for
// being large.
func (l *logFile) Write(p []byte) (int, error) {
	n := len(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if int64(len(p)) > l.maxBytes {
		p = p[int64(len(p))-l.maxBytes:]
	}
	if l.f == nil || (l.size > 0 && l.size+int64(len(p)) > l.maxBytes) {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	w, err := l.f.Write(p)
	l.size += int64(w)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// rotate shifts the old files and starts a new one.
func (l *logFile) rotate() error {
	if l.f != nil {
		err := l.f.Close()
		l.f = nil
		if err != nil {
			return err
		}
	}
	if l.keep == 0 {
		_ = os.Remove(l.path)
	} else {
		_ = os.Remove(fmt.Sprintf("%s.%d", l.path, l.keep))
		for i := l.keep - 1; i >= 1; i-- {
			_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
		}
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.f == nil {
		l.closed = true
		return nil
	}
	l.closed = true
	err := l.f.Close()
	l.f = nil
	return err
}

// taskLogPath is where a task's stdout or stderr is written; ok is false
// for names that are not plain file names.
func taskLogPath(dataDir, allocID, task, typ string) (string, bool) {
	if typ != "stdout" && typ != "stderr" {
		return "", false
	}
	for _, s := range []string{allocID, task} {
		if s == "" || s == "." || s == ".." || filepath.Base(s) != s {
			return "", false
		}
	}
	return filepath.Join(dataDir, "allocs", allocID, "logs", task+"."+typ), true
}

// openTaskLogs opens a task's stdout and stderr log files.
func openTaskLogs(dataDir, allocID, task string) (stdout, stderr *logFile, err error) {
	outPath, ok := taskLogPath(dataDir, allocID, task, "stdout")
	errPath, _ := taskLogPath(dataDir, allocID, task, "stderr")
	if !ok {
		return nil, nil, fmt.Errorf("edge: task %q of allocation %q has no log file name", task, allocID)
	}
	if stdout, err = openLogFile(outPath, taskLogMaxBytes, taskLogKeep); err != nil {
		return nil, nil, err
	}
	if stderr, err = openLogFile(errPath, taskLogMaxBytes, taskLogKeep); err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}
