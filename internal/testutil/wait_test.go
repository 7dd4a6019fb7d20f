package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fatalTB records a Fatal and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn as a test body would and returns its Fatal message, "" if
// it returned normally.
func (f *fatalTB) run(fn func(testing.TB)) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		checks := 0
		err := Poll(time.Minute, 100*time.Millisecond, "third check", func() error {
			checks++
			if checks < 3 {
				return fmt.Errorf("check %d", checks)
			}
			return nil
		})
		if err != nil || checks != 3 {
			t.Fatalf("Poll = %v after %d checks, want nil after 3", err, checks)
		}
		// At once, then one tick apart: no wait before the first check.
		if d := time.Since(start); d != 200*time.Millisecond {
			t.Fatalf("Poll took %s, want 200ms", d)
		}
	})
}

func TestPollTimesOutWithTheLastState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		checks := 0
		err := Poll(time.Second, 300*time.Millisecond, "the service answers", func() error {
			checks++
			return fmt.Errorf("state %d", checks)
		})
		var te *TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("Poll = %v, want a *TimeoutError", err)
		}
		// Checks at 0, 300, 600, 900 and 1200 ms: the last one after the deadline.
		if te.Checks != 5 || te.Last.Error() != "state 5" || time.Since(start) != 1200*time.Millisecond {
			t.Fatalf("%+v after %s, want 5 checks, last state 5, after 1.2s", te, time.Since(start))
		}
		for _, want := range []string{"the service answers", "not within 1s", "5 checks", "last: state 5"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q lacks %q", err, want)
			}
		}
	})
}

func TestEventuallyFailsTheTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fatalTB{TB: t}
		msg := f.run(func(tb testing.TB) {
			Eventually(tb, time.Second, "a leader", func() error { return errors.New("no leader") })
		})
		if !strings.Contains(msg, "a leader: not within 1s") || !strings.Contains(msg, "last: no leader") {
			t.Fatalf("Fatal(%q), want what was awaited and the last state", msg)
		}
		f = &fatalTB{TB: t}
		if msg := f.run(func(tb testing.TB) { Eventually(tb, time.Second, "x", func() error { return nil }) }); msg != "" {
			t.Fatalf("Fatal(%q) for a condition that holds", msg)
		}
	})
}

func TestAwaitWakesOnWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Buffer
		go func() {
			for _, s := range []string{"starting\n", "listening\n", "registered\n"} {
				<-time.After(time.Second) // the bubble's fake clock: a writer some time later
				b.Write([]byte(s))
			}
		}()
		start := time.Now()
		checks := 0
		Await(t, time.Minute, "registered", b.Changed, func() error {
			checks++
			if !strings.Contains(b.String(), "registered") {
				return errors.New(b.String())
			}
			return nil
		})
		// One check at once and one per write: no polling in between.
		if checks != 4 || time.Since(start) != 3*time.Second {
			t.Fatalf("%d checks in %s, want 4 in 3s", checks, time.Since(start))
		}
	})
}

func TestAwaitTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Buffer
		b.Write([]byte("starting\n"))
		f := &fatalTB{TB: t}
		start := time.Now()
		msg := f.run(func(tb testing.TB) {
			Await(tb, 5*time.Second, "the pin line", b.Changed, func() error {
				return fmt.Errorf("output so far %q", b.String())
			})
		})
		if time.Since(start) != 5*time.Second || !strings.Contains(msg, "the pin line: not within 5s") ||
			!strings.Contains(msg, `output so far "starting\n"`) {
			t.Fatalf("after %s: Fatal(%q)", time.Since(start), msg)
		}
	})
}

func TestBufferChangedIsClosedByAWrite(t *testing.T) {
	var b Buffer
	ch := b.Changed()
	if ch != b.Changed() {
		t.Fatal("two calls before a write return different channels")
	}
	select {
	case <-ch:
		t.Fatal("closed before any write")
	default:
	}
	b.Write(nil) // nothing written: nothing changed
	select {
	case <-ch:
		t.Fatal("closed by an empty write")
	default:
	}
	b.Write([]byte("x"))
	select {
	case <-ch:
	default:
		t.Fatal("not closed by a write")
	}
	if next := b.Changed(); next == ch {
		t.Fatal("the channel after a write is the closed one")
	}
}
