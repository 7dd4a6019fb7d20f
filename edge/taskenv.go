package edge

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/strata-run/strata/internal/wire"
	"github.com/strata-run/strata/spec"
)

// Where a task sees its allocation's directories (Nomad's layout): the
// alloc directory its group's tasks share, and its own local directory,
// where a dispatched job's payload is written.
const (
	allocDirMount = "/alloc"
	taskDirMount  = "/local"
)

// taskDirs creates the allocation's shared directory and the task's own
// under the agent's data directory (allocs/<alloc>/alloc and
// allocs/<alloc>/tasks/<task>/local, beside its logs) and returns them as
// mounts at /alloc and /local.
func (r *allocRunner) taskDirs(task string) ([]hostMount, error) {
	alloc, local, err := allocPaths(r.deps.dataDir, r.alloc.ID, task)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{alloc, local} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("edge: the directories of task %q: %w", task, err)
		}
	}
	return []hostMount{{Source: alloc, Destination: allocDirMount}, {Source: local, Destination: taskDirMount}}, nil
}

// allocPaths are the host paths of an allocation's shared directory and
// of a task's local directory; names that are not plain file names are
// refused.
func allocPaths(dataDir, allocID, task string) (alloc, local string, err error) {
	for _, s := range []string{allocID, task} {
		if s == "" || s == "." || s == ".." || filepath.Base(s) != s {
			return "", "", fmt.Errorf("edge: %q is not a plain file name, so it cannot name a directory", s)
		}
	}
	base := filepath.Join(dataDir, "allocs", allocID)
	return filepath.Join(base, "alloc"), filepath.Join(base, "tasks", task, "local"), nil
}

// runtimeVars are the variables a task sees and its env and args may
// reference (spec/runtimevars.go lists them): each under Strata's name
// and Nomad's, for every port of the allocation and every meta key.
func (r *allocRunner) runtimeVars(t *wire.Task) map[string]string {
	a := r.alloc
	vars := map[string]string{
		"ALLOC_ID":     a.ID,
		"ALLOC_NAME":   a.Name,
		"ALLOC_INDEX":  strconv.Itoa(a.Index),
		"ALLOC_DIR":    allocDirMount,
		"TASK_DIR":     taskDirMount,
		"JOB_ID":       a.JobID,
		"JOB_NAME":     a.JobID,
		"GROUP_NAME":   a.Group,
		"TASK_NAME":    t.Name,
		"DC":           r.deps.node.datacenter,
		"REGION":       a.Region,
		"CPU_LIMIT":    strconv.Itoa(t.Resources.CPU),
		"MEMORY_LIMIT": strconv.Itoa(t.Resources.MemoryMB),
	}
	bind := r.deps.node.bindAddr
	for _, p := range a.Ports {
		port := strconv.Itoa(p.Value)
		addr := net.JoinHostPort(bind, port)
		for _, kind := range []string{"", "HOST_", "ALLOC_"} {
			vars[kind+"PORT_"+p.Label] = port
			vars[kind+"IP_"+p.Label] = bind
			vars[kind+"ADDR_"+p.Label] = addr
		}
	}
	out := make(map[string]string, 2*len(vars))
	for k, v := range vars {
		out["STRATA_"+k] = v
		out["NOMAD_"+k] = v
	}
	maps.Copy(out, spec.MetaVars(t.Meta))
	return out
}

// resolver resolves a task's runtime references: its runtime variables,
// then the node's (node.*, attr.*, meta.*).
func (r *allocRunner) resolver(vars map[string]string) func(ref string) (string, bool) {
	node := r.deps.node
	return func(ref string) (string, bool) {
		if v, ok := vars[ref]; ok {
			return v, true
		}
		switch {
		case ref == "node.datacenter":
			return node.datacenter, true
		case ref == "node.unique.name":
			return node.name, true
		case ref == "node.unique.id":
			return node.id, true
		case strings.HasPrefix(ref, "attr."):
			v, ok := node.attributes[strings.TrimPrefix(ref, "attr.")]
			return v, ok
		case strings.HasPrefix(ref, "meta."):
			v, ok := node.meta[strings.TrimPrefix(ref, "meta.")]
			return v, ok
		}
		return "", false
	}
}

// writePayload writes a dispatched task's payload into its /local
// directory (the mount of dirs at taskDirMount). The file must be a
// relative path inside it: the servers validated it, the agent does not
// trust that.
func writePayload(dirs []hostMount, t *wire.Task) error {
	p := t.DispatchPayload
	if p == nil {
		return nil
	}
	var local string
	for _, d := range dirs {
		if d.Destination == taskDirMount {
			local = d.Source
		}
	}
	if local == "" || !filepath.IsLocal(p.File) {
		return fmt.Errorf("edge: task %q: dispatch payload file %q is not a relative path inside /local", t.Name, p.File)
	}
	dst := filepath.Join(local, p.File)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("edge: task %q: dispatch payload: %w", t.Name, err)
	}
	if err := os.WriteFile(dst, p.Data, 0o644); err != nil {
		return fmt.Errorf("edge: task %q: dispatch payload: %w", t.Name, err)
	}
	return nil
}
