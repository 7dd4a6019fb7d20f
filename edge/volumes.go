package edge

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/strata-run/strata/internal/wire"
)

// Host volumes: the only host directories a task can see. The agent's
// operator declares them (Config.HostVolumes); the agent registers them
// with its node, so the servers place a job that asks for one only here,
// and resolves a task's volume mounts to their paths when it starts the
// task, refusing one it does not declare (any more) and making a mount
// read-only when the job or the declaration says so.

// errUnknownHostVolume: a task mounts a host volume this agent does not
// declare (it was declared when the task was placed, and no longer is).
var errUnknownHostVolume = errors.New("edge: host volume not declared on this agent")

// hostMount is a volume mount resolved to a directory of this host.
type hostMount struct {
	Source      string // the host volume's path
	Destination string // where the task sees it
	ReadOnly    bool
}

// checkHostVolumes checks the operator's declarations: a name as the job
// language's, an absolute path to an existing directory (cleaned).
func checkHostVolumes(vols map[string]HostVolume) (map[string]HostVolume, error) {
	if len(vols) == 0 {
		return nil, nil
	}
	out := make(map[string]HostVolume, len(vols))
	for _, name := range slices.Sorted(maps.Keys(vols)) {
		hv := vols[name]
		if err := validVolumeName(name); err != nil {
			return nil, err
		}
		if !filepath.IsAbs(hv.Path) {
			return nil, fmt.Errorf("edge: host volume %q: path %q must be absolute", name, hv.Path)
		}
		hv.Path = filepath.Clean(hv.Path)
		fi, err := os.Stat(hv.Path)
		if err != nil {
			return nil, fmt.Errorf("edge: host volume %q: %w", name, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("edge: host volume %q: %s is not a directory", name, hv.Path)
		}
		out[name] = hv
	}
	return out, nil
}

// validVolumeName is the job language's rule for names: a job's volume
// source must be able to name it.
func validVolumeName(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("edge: host volume name %q must be 1 to 128 characters", s)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("edge: host volume name %q contains %q: use letters, digits, '_', '.' and '-'", s, c)
		}
	}
	return nil
}

// hostMounts resolves a task's volume mounts to the host volumes vols
// declares: read-only when the mount (the job) or the declaration says so.
func hostMounts(vols map[string]HostVolume, ms []wire.VolumeMount) ([]hostMount, error) {
	var out []hostMount
	for _, m := range ms {
		hv, ok := vols[m.HostVolume]
		if !ok {
			return nil, fmt.Errorf("%w: the job's volume %q asks for host volume %q (declare it with -host-volume %s=PATH)", errUnknownHostVolume, m.Volume, m.HostVolume, m.HostVolume)
		}
		out = append(out, hostMount{Source: hv.Path, Destination: m.Destination, ReadOnly: m.ReadOnly || hv.ReadOnly})
	}
	return out, nil
}
