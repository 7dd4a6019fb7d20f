package testutil

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// Elapse, inside a synctest bubble, moves the bubble's fake clock on by d
// and returns once every goroutine of the bubble is blocked again: the
// timers due meanwhile have fired and what they woke has run. No real
// time passes.
func Elapse(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// DefaultTick is how often Eventually checks its condition.
const DefaultTick = 50 * time.Millisecond

// TimeoutError is a condition that did not hold in time: what was awaited,
// for how long, how often it was checked and why it last did not hold.
type TimeoutError struct {
	What    string
	Timeout time.Duration
	Checks  int
	Last    error // the condition's last answer; nil if it was never checked
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: not within %s (%d checks); last: %v", e.What, e.Timeout, e.Checks, e.Last)
}

func (e *TimeoutError) Unwrap() error { return e.Last }

// Poll is the one bounded poll of the tests, for what a test can only
// observe by asking again: a child process, a container, a socket of
// another process. It calls cond at once and then every tick until cond
// returns nil (then Poll returns nil), or until timeout has passed after
// a failed check (then it returns a *TimeoutError carrying cond's last
// error, which should describe the state seen). cond runs on the caller's
// goroutine. Where a change can be waited for (a channel, a commit, a
// write), use Await instead.
func Poll(timeout, tick time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for checks := 1; ; checks++ {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return &TimeoutError{What: what, Timeout: timeout, Checks: checks, Last: err}
		}
		<-ticker.C
	}
}

// Eventually is Poll every DefaultTick that fails the test on a timeout.
// cond runs on the test's goroutine, so it may itself call t.Fatal to
// give up at once (a child process exited, an invariant broke).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, DefaultTick, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Await waits for an event rather than polling: it checks cond at once
// and again each time the channel changed returned before that check is
// closed (a store's commit notification, Buffer.Changed), until cond
// returns nil. It fails the test once timeout has passed, with cond's
// last error. changed is called before each check, so a change between
// the check and the wait is not missed.
func Await(t testing.TB, timeout time.Duration, what string, changed func() <-chan struct{}, cond func() error) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for checks := 1; ; checks++ {
		ch := changed()
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			if err = cond(); err == nil {
				return
			}
			t.Fatal(&TimeoutError{What: what, Timeout: timeout, Checks: checks + 1, Last: err})
		}
	}
}
