// Package fsutil is file and identity plumbing shared by the coordinator
// and the agent: atomic writes and IDs kept in a data dir.
package fsutil
