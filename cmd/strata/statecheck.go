package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/strata-run/strata/coordinator"
)

// runStateCheck fully checks a stopped server's data dir: every page and
// record of state.db, every page of the Raft log. A damaged state.db
// needs no repair by hand: a server moves it aside at start and rebuilds
// it from Raft.
func runStateCheck(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "operator state check")
	dataDir := fs.String("data-dir", "", "the server's data directory (required; stop the server first)")
	out := addOutputFlags(fs)
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("operator state check takes no arguments, got %q", pos)
	}
	if *dataDir == "" {
		return usageError("operator state check needs -data-dir")
	}
	rep, err := coordinator.CheckDataDir(*dataDir)
	if err != nil {
		return &exitError{code: 1, msg: err.Error() + "\n(a server started on this data dir moves a damaged state.db aside and rebuilds it from the Raft snapshot and log)"}
	}
	if out.raw() {
		return out.write(env.Stdout, rep)
	}
	buckets := make([]string, 0, len(rep.Records))
	for b, n := range rep.Records {
		if n > 0 {
			buckets = append(buckets, fmt.Sprintf("%s %d", b, n))
		}
	}
	slices.Sort(buckets)
	fmt.Fprintf(env.Stdout, "%s: ok (format %s, applied index %d; records: %s)\n", rep.StateFile, rep.Format, rep.Index, strings.Join(buckets, ", "))
	fmt.Fprintf(env.Stdout, "%s: ok (every page)\n", rep.RaftLog)
	return nil
}
