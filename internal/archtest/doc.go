// Package archtest holds tests of the repository's architecture: which
// packages may import which (DESIGN.md: spec ← sched ← coordinator,
// wasmhost ← edge, registry used by both sides). It has no code.
package archtest
