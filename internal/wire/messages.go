package wire

import "time"

// Register is the agent's first frame on the control stream.
type Register struct {
	// Versions are the protocol versions the agent speaks (Versions());
	// the server answers with the one it picked, or refuses with an Error
	// naming both sides' versions. None means version 1 only.
	Versions   []int             `json:"Versions,omitempty"`
	NodeID     string            `json:"NodeID"`
	Name       string            `json:"Name"`
	Datacenter string            `json:"Datacenter"`
	Address    string            `json:"Address"` // IP its tasks listen on
	CPU        int               `json:"CPU"`     // MHz
	MemoryMB   int               `json:"MemoryMB"`
	Drivers    map[string]bool   `json:"Drivers"`
	Attributes map[string]string `json:"Attributes,omitempty"`
	Meta       map[string]string `json:"Meta,omitempty"`
	// HostVolumes are the directories the agent's operator lets jobs
	// mount, by name.
	HostVolumes map[string]HostVolume `json:"HostVolumes,omitempty"`
}

// HostVolume is a directory an agent offers jobs under a name.
type HostVolume struct {
	Path     string `json:"Path"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

// Registered answers Register.
type Registered struct {
	// Version is the protocol version the server picked from Register's
	// Versions: the rest of the connection speaks it.
	Version int    `json:"Version"`
	NodeID  string `json:"NodeID"`
	// HeartbeatMillis is how often the agent must send a Heartbeat.
	HeartbeatMillis int64 `json:"HeartbeatMillis"`
	// Servers are the agent addresses of the servers this one knows, so
	// the agent can fail over to servers it was not told of.
	Servers []string `json:"Servers,omitempty"`
}

// HeartbeatInterval tells a connected agent to beat at a new interval:
// the cluster grew since it registered, and the servers spread
// heartbeats over a longer TTL.
type HeartbeatInterval struct {
	Millis int64 `json:"Millis"`
}

// Heartbeat keeps the node alive. It carries nothing yet.
type Heartbeat struct{}

// Allocs is the complete set of allocations the server wants on the node.
// It is sent after Registered and again whenever the set changes; the agent
// reconciles to it (anything running that is absent or DesiredStatus
// "stop" is stopped).
type Allocs struct {
	Index  uint64  `json:"Index"`
	Allocs []Alloc `json:"Allocs"`
}

// Alloc is one allocation as the agent needs it: what to run and on which ports.
type Alloc struct {
	ID            string `json:"ID"`
	Name          string `json:"Name"`
	JobID         string `json:"JobID"`
	JobVersion    uint64 `json:"JobVersion"`
	Group         string `json:"Group"`
	DesiredStatus string `json:"DesiredStatus"`
	// Index is the allocation's index in its group (NOMAD_ALLOC_INDEX),
	// Region its job's region (NOMAD_REGION).
	Index  int    `json:"Index,omitempty"`
	Region string `json:"Region,omitempty"`
	// StopAfterOfflineMillis: the agent stops this allocation itself once
	// it has been unable to reach any server this long (the group's
	// disconnect.stop_on_client_after); 0 keeps it running.
	StopAfterOfflineMillis int64 `json:"StopAfterOfflineMillis,omitempty"`
	// DeploymentID is the deployment that placed the allocation; Canary
	// marks an unpromoted canary (its services carry their canary tags).
	DeploymentID string `json:"DeploymentID,omitempty"`
	Canary       bool   `json:"Canary,omitempty"`
	// Health, when set, asks the agent to decide the allocation's
	// deployment health and report it (AllocStatus.Health).
	Health *HealthPolicy `json:"Health,omitempty"`
	// Tasks are the group's tasks, as the agent runs them (task.go).
	Tasks []Task `json:"Tasks"`
	// Ports are every port the scheduler assigned to the allocation: the
	// group's and each task's.
	Ports []Port `json:"Ports,omitempty"`
}

// HealthPolicy is how an agent decides an allocation's deployment health
// (the group's update block): healthy once everything passed without
// interruption for MinHealthyTime ("checks": every task running and every
// check passing; "task_states": every task running), unhealthy when a
// task fails or HealthyDeadline passes first (from the allocation's
// start).
type HealthPolicy struct {
	Mode            string        `json:"Mode"` // HealthChecks or HealthTaskStates
	MinHealthyTime  time.Duration `json:"MinHealthyTime"`
	HealthyDeadline time.Duration `json:"HealthyDeadline"`
}

// HealthPolicy.Mode values.
const (
	HealthChecks     = "checks"
	HealthTaskStates = "task_states"
)

// AllocStatus.Health values.
const (
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
)

// Port is a port assigned on the node.
type Port struct {
	Label string `json:"Label"`
	Value int    `json:"Value"`
	To    int    `json:"To,omitempty"`
}

// AllocStatus reports an allocation's state on the agent.
type AllocStatus struct {
	AllocID      string     `json:"AllocID"`
	ClientStatus string     `json:"ClientStatus"` // pending, running, complete, failed
	Description  string     `json:"Description,omitempty"`
	Endpoints    []Endpoint `json:"Endpoints,omitempty"`
	// TaskStates is each task's state and recent events, by task name.
	TaskStates map[string]*TaskState `json:"TaskStates,omitempty"`
	// Health is the allocation's deployment health once the agent decided
	// it (Healthy or Unhealthy; "" while undecided), observed at
	// HealthTime (unix nanoseconds). It never changes once sent.
	Health     string `json:"Health,omitempty"`
	HealthTime int64  `json:"HealthTime,omitempty"`
}

// Task states, Nomad's.
const (
	TaskPending = "pending" // not started yet, or waiting to restart
	TaskRunning = "running"
	TaskDead    = "dead" // finished, failed or killed; Failed tells which
)

// Task event types, Nomad's names.
const (
	EventReceived      = "Received"         // the agent took the task
	EventStarted       = "Started"          // an attempt started
	EventDriverFailure = "Driver Failure"   // an attempt could not start (fetch, compile, listen)
	EventTerminated    = "Terminated"       // a started attempt ended (exit code, trap, limit)
	EventRestarting    = "Restarting"       // the restart policy restarts it after RestartDelay
	EventNotRestarting = "Not Restarting"   // the restart policy gave up
	EventKilled        = "Killed"           // stopped on purpose; Message says why
	EventRestartSignal = "Restart Signaled" // a check_restart limit was reached
)

// MaxTaskEvents is how many events a task keeps, newest last (Nomad's 10).
const MaxTaskEvents = 10

// TaskState is one task's life on the agent. Times are unix nanoseconds
// stamped by the agent.
type TaskState struct {
	State      string      `json:"State"` // pending, running, dead
	Failed     bool        `json:"Failed,omitempty"`
	Restarts   int         `json:"Restarts,omitempty"`
	StartedAt  int64       `json:"StartedAt,omitempty"`  // last start
	FinishedAt int64       `json:"FinishedAt,omitempty"` // when it last became dead
	Events     []TaskEvent `json:"Events,omitempty"`     // oldest first, at most MaxTaskEvents
}

// TaskEvent is one thing that happened to a task.
type TaskEvent struct {
	Type    string `json:"Type"`
	Time    int64  `json:"Time"`
	Message string `json:"Message,omitempty"` // for people: exit code, trap, reason, delay
	// ExitCode is the module's exit code, for Terminated after an exit.
	ExitCode *int `json:"ExitCode,omitempty"`
	// RestartDelayMillis is the wait before the restart, for Restarting.
	RestartDelayMillis int64 `json:"RestartDelayMillis,omitempty"`
	// FailsTask: this event made the task fail (Not Restarting).
	FailsTask bool `json:"FailsTask,omitempty"`
}

// Append adds e, dropping the oldest events beyond MaxTaskEvents.
func (s *TaskState) Append(e TaskEvent) {
	s.Events = append(s.Events, e)
	if n := len(s.Events) - MaxTaskEvents; n > 0 {
		s.Events = append(s.Events[:0:0], s.Events[n:]...)
	}
}

// Clone returns a deep copy of s.
func (s *TaskState) Clone() *TaskState {
	if s == nil {
		return nil
	}
	c := *s
	c.Events = make([]TaskEvent, len(s.Events))
	for i, e := range s.Events {
		if e.ExitCode != nil {
			code := *e.ExitCode
			e.ExitCode = &code
		}
		c.Events[i] = e
	}
	if len(c.Events) == 0 {
		c.Events = nil
	}
	return &c
}

// Endpoint is a service instance the agent serves for an allocation.
type Endpoint struct {
	Service string   `json:"Service"`
	Tags    []string `json:"Tags,omitempty"`
	Port    int      `json:"Port"`
	Healthy bool     `json:"Healthy"`
	// Canary: an unpromoted canary's instance; Tags are its canary tags.
	Canary bool `json:"Canary,omitempty"`
}

// FetchModule asks for a module's bytes by digest, from Offset on: an
// agent resuming a broken download asks for what its partial file lacks.
type FetchModule struct {
	Digest string `json:"Digest"` // "sha256:<hex>"
	Offset int64  `json:"Offset,omitempty"`
}

// ModuleHeader precedes the module's bytes from Offset to Size (Size is
// the whole module's length, so Size-Offset raw bytes follow); Error is
// set instead when the server does not have the module or Offset is past
// its end.
type ModuleHeader struct {
	Digest string `json:"Digest"`
	Size   int64  `json:"Size"`
	Offset int64  `json:"Offset,omitempty"`
	Error  string `json:"Error,omitempty"`
}

// LogRequest opens a log stream: the server opens a new stream on the
// agent's connection and sends it; the agent answers with a LogHeader and,
// unless the header carries an error, the log's bytes. With Follow the
// agent keeps sending what the task appends until the server closes or
// resets its side of the stream.
type LogRequest struct {
	AllocID string `json:"AllocID"`
	Task    string `json:"Task"`
	Type    string `json:"Type"` // "stdout" or "stderr"
	Follow  bool   `json:"Follow,omitempty"`
	// TailLines > 0 starts that many lines before the end; 0 sends the
	// whole current log file.
	TailLines int `json:"TailLines,omitempty"`
}

// LogHeader answers a LogRequest; raw bytes follow unless Error is set.
type LogHeader struct {
	Error string `json:"Error,omitempty"`
}

// Error is sent before closing a stream for a reason the peer should show.
type Error struct {
	Message string `json:"Message"`
	// Temporary says the same request may succeed later (e.g. the
	// cluster has no leader); otherwise the refusal is final.
	Temporary bool `json:"Temporary,omitempty"`
	// Versions is set when a server refuses a Register because it shares
	// no protocol version with the agent: both sides' versions.
	Versions *VersionMismatch `json:"Versions,omitempty"`
}

// Refusal is a peer's Error frame as an error.
type Refusal Error

func (r *Refusal) Error() string { return r.Message }

// Join is an agent's request for a client certificate. It is the only
// frame a server accepts on a connection whose agent presented no client
// certificate. The key stays on the agent: it sends a certificate signing
// request, and the server answers with the certificate signed by the
// cluster CA for NodeID, or an Error.
type Join struct {
	// Token is "<id>.<secret>" as `strata agent token create` printed it.
	Token  string `json:"Token"`
	NodeID string `json:"NodeID"`
	Name   string `json:"Name"`
	// CSR is a DER PKCS #10 request signed by the agent's key.
	CSR []byte `json:"CSR"`
}

// Joined carries the agent's client certificate (PEM). The agent keeps it
// in its data dir and presents it on every later connection.
type Joined struct {
	CertPEM []byte `json:"CertPEM"`
}

// SignalTask asks the agent to send a signal to a running task: the
// server opens a new stream on the agent's connection and sends it; the
// agent answers with TaskSignalled and closes the stream.
type SignalTask struct {
	AllocID string `json:"AllocID"`
	Task    string `json:"Task"`
	// Signal is a POSIX signal name: "SIGHUP", "SIGUSR1", "SIGTERM", …
	// A docker task's container gets it; a wasm task takes only the stop
	// signals (SIGTERM, SIGINT, SIGQUIT, SIGKILL), which end its instance.
	Signal string `json:"Signal"`
}

// TaskSignalled answers SignalTask: Error says why the signal was not
// delivered.
type TaskSignalled struct {
	Error string `json:"Error,omitempty"`
}

// RestartTask asks the agent to restart a running task in place (Nomad's
// `alloc restart`), on a stream the server opens: the task's attempt ends
// as its restart policy ends one, and it starts again at once; a restart
// asked for is not a failure, so it spends none of the policy's attempts.
// Task "" restarts every task of the allocation that runs. The agent
// answers with TaskRestarted once the tasks are told to restart.
type RestartTask struct {
	AllocID string `json:"AllocID"`
	Task    string `json:"Task,omitempty"`
}

// TaskRestarted answers RestartTask: the tasks restarted, or Error says
// why none was.
type TaskRestarted struct {
	Tasks []string `json:"Tasks,omitempty"`
	Error string   `json:"Error,omitempty"`
}

// StatsRequest asks for a running task's resource use, on a stream the
// server opens; the agent answers with TaskStats.
type StatsRequest struct {
	AllocID string `json:"AllocID"`
	Task    string `json:"Task"`
}

// What TaskStats.Measured may name.
const (
	MeasuredMemory    = "memory"    // MemoryBytes, MemoryLimitBytes
	MeasuredCPU       = "cpu"       // CPUPercent, CPUTotalNanos
	MeasuredInstances = "instances" // Instances
	MeasuredRequests  = "requests"  // Requests
)

// TaskStats is a task's resource use as its driver measures it: a
// container's cgroup memory and CPU; a wasm task's running instances and
// (http mode) the requests it served. Measured names the fields that hold
// a measurement, so a zero is never mistaken for one.
type TaskStats struct {
	AllocID string `json:"AllocID"`
	Task    string `json:"Task"`
	Time    int64  `json:"Time"` // unix nanoseconds, stamped by the agent
	// Measured lists what was measured (the Measured* constants).
	Measured []string `json:"Measured,omitempty"`
	// MemoryBytes is the memory in use, page cache excluded.
	MemoryBytes      int64 `json:"MemoryBytes,omitempty"`
	MemoryLimitBytes int64 `json:"MemoryLimitBytes,omitempty"`
	// CPUPercent is the CPU used over the sampling interval, 100 per core.
	CPUPercent float64 `json:"CPUPercent,omitempty"`
	// CPUTotalNanos is the CPU time used since the task's attempt started.
	CPUTotalNanos uint64 `json:"CPUTotalNanos,omitempty"`
	// Instances are the module instances running now.
	Instances int `json:"Instances,omitempty"`
	// Requests counts the http requests served since the attempt started.
	Requests int64 `json:"Requests,omitempty"`
	// Error is set instead when the task is not running on the agent or
	// its driver could not measure it.
	Error string `json:"Error,omitempty"`
}
