package wire

import (
	"fmt"
	"slices"
)

// Protocol versions. An agent lists the versions it speaks in Register;
// the server picks the newest one it speaks too (Negotiate) and names it
// in Registered, or refuses the agent with an Error whose Versions name
// both sides'. What never changes between versions: the framing, Join and
// Joined, Error, and Register's and Registered's version fields, so that
// any two builds can at least tell each other why they cannot talk.
//
// A change of any payload's encoding is a new version (the golden files in
// testdata/ show every change of the encoding in review). A build may
// speak several versions (MinVersion to Version) while a fleet upgrades.
const (
	// Version is the newest protocol version this build speaks. Version 1
	// is the first with its own task types (task.go) instead of the job
	// language's. Version 2 adds deployments: an allocation's deployment
	// and health policy, its canary flag, the health the agent reports,
	// services' canary tags, endpoints' canary flag and tasks' shutdown
	// delay. Version 3 replaces raw host paths (TaskConfig.Mounts, gone)
	// with host volumes: the ones an agent declares (Register.HostVolumes)
	// and a task's mounts of them (Task.VolumeMounts). RestartTask and
	// TaskRestarted came later without a new version: only a server opens
	// such a stream, and an agent built before them resets it (an unknown
	// frame type), which the server reports as an agent too old to
	// restart tasks. The catalog stream (catalog.go) came later too
	// without a new version: only an agent opens it, and a server built
	// before it resets it (error code 1), which the agent reports as a
	// server that does not replicate the catalog. Version 4 adds Nomad's
	// runtime environment: an allocation's index and region, a task's
	// merged meta (the agent's NOMAD_ALLOC_INDEX, NOMAD_REGION,
	// NOMAD_META_*), and the /alloc and /local directories the agent
	// mounts in every task. Version 5 adds a task's dispatch payload
	// (Task.DispatchPayload), which the agent writes into /local.
	Version = 5
	// MinVersion is the oldest version this build still speaks. A
	// version 1 agent reports no deployment health, so a deployment would
	// wait on it until its deadline; a version 2 agent would ignore a
	// task's volume mounts and run it without them (an agent downgraded
	// on a node that declared volumes). A version 3 server sends no
	// allocation index, so a version 4 agent would give every allocation
	// NOMAD_ALLOC_INDEX=0; a version 3 agent fails a task naming a
	// runtime variable it does not know. A version 4 agent would run a
	// dispatched task without its payload file: servers speak 5 only.
	MinVersion = 5
)

// Versions are the protocol versions this build speaks, newest first.
func Versions() []int {
	out := make([]int, 0, Version-MinVersion+1)
	for v := Version; v >= MinVersion; v-- {
		out = append(out, v)
	}
	return out
}

// VersionMismatch is the refusal of an agent that shares no protocol
// version with the server: both sides' versions.
type VersionMismatch struct {
	Agent  []int `json:"Agent"`
	Server []int `json:"Server"`
}

func (e *VersionMismatch) Error() string {
	return fmt.Sprintf("no common protocol version: the agent speaks %s, the server speaks %s; upgrade the older of the two",
		versionList(e.Agent), versionList(e.Server))
}

func versionList(vs []int) string {
	if len(vs) == 0 {
		return "none"
	}
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(v)
	}
	return s
}

// Negotiate picks the newest version both an agent (the versions its
// Register listed; none means version 1, the first) and a server speak,
// or returns a *VersionMismatch.
func Negotiate(agent, server []int) (int, error) {
	if len(agent) == 0 {
		agent = []int{1}
	}
	best := 0
	for _, v := range agent {
		if v > best && slices.Contains(server, v) {
			best = v
		}
	}
	if best == 0 {
		return 0, &VersionMismatch{Agent: slices.Clone(agent), Server: slices.Clone(server)}
	}
	return best, nil
}
