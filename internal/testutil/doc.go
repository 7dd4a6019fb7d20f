// Package testutil holds small helpers shared by the tests of several
// packages. Nothing outside tests imports it.
//
// It owns the tests' ways of waiting: Await, on an event (a commit
// notification, a write to a Buffer), and Poll / Eventually, the one
// bounded poll, for what can only be observed by asking again (child
// processes, containers, other processes' sockets). A test never sleeps
// to wait for something; in-process logic is tested with testing/synctest
// or a clock passed in. The package must not import the packages whose
// tests use it (coordinator, edge, ...): that would be an import cycle.
package testutil
