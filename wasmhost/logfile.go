package wasmhost

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Defaults of OpenLogFile, Nomad's: 10 files of 10 MiB.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogKeep     = 9
)

// LogFile is a module's stdout or stderr on disk, rotated by size: when a
// write would take the file past maxBytes, path.<keep> is dropped, every
// path.N becomes path.N+1, path becomes path.1 and a new path is started. At
// most (keep+1)×maxBytes of disk is used: a single write larger than maxBytes
// keeps only its last maxBytes. It is safe for concurrent use.
type LogFile struct {
	path     string
	maxBytes int64
	keep     int

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation: reopened on the next write
	size   int64
	closed bool
}

// OpenLogFile opens (appending to) or creates path, its directory included.
// maxBytes <= 0 means DefaultLogMaxBytes, keep < 0 DefaultLogKeep (0 keeps no
// old file: rotation truncates).
func OpenLogFile(path string, maxBytes int64, keep int) (*LogFile, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultLogMaxBytes
	}
	if keep < 0 {
		keep = DefaultLogKeep
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("wasmhost: log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wasmhost: log file: %w", err)
	}
	return &LogFile{path: path, maxBytes: maxBytes, keep: keep, f: f, size: fi.Size()}, nil
}

// Write implements io.Writer. It reports p as written in full even when only
// its tail is kept (see LogFile), so that a module's write never fails for
// being large.
func (l *LogFile) Write(p []byte) (int, error) {
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
func (l *LogFile) rotate() error {
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
func (l *LogFile) Close() error {
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
