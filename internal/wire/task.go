package wire

import "time"

// The task as the agent runs it. These types are the protocol's own, not
// the job language's: the coordinator converts a job's task into a Task
// in one place (coordinator/wiretask.go), so a change of the job language
// changes the wire only when that conversion does, and the golden files in
// testdata/ show it. A Task holds what an agent needs to run the task and
// nothing else (no placement, no update strategy).
//
// Durations are time.Duration, encoded as integer nanoseconds (as Nomad's
// API does). String values of Env, Args and Command may hold runtime
// references (${STRATA_PORT_http}, ${node.datacenter}, …) that the agent
// resolves on the node.

// Drivers and wasm modes an agent may be asked to run.
const (
	DriverWasm   = "wasm"
	DriverDocker = "docker"

	ModeCommand  = "command"  // _start once; exit 0 completes the task
	ModeHTTP     = "http"     // WAGI: an instance per request on the task's port
	ModeListener = "listener" // one long-lived instance serving the task's port
)

// Task is one task of an allocation.
type Task struct {
	Name   string     `json:"Name"`
	Driver string     `json:"Driver"` // DriverWasm or DriverDocker
	Config TaskConfig `json:"Config"`
	// Env is the task's environment, before the runtime variables
	// (STRATA_*, NOMAD_*) the agent adds.
	Env map[string]string `json:"Env,omitempty"`
	// Meta is the task's meta merged over its group's and job's: the
	// NOMAD_META_<key> variables.
	Meta      map[string]string `json:"Meta,omitempty"`
	Resources Resources         `json:"Resources"`
	Services  []Service         `json:"Services,omitempty"`
	// Restart is the task's restart policy; nil means the agent's default
	// (Nomad's: 2 attempts in 30m, 15s apart, then fail).
	Restart *RestartPolicy `json:"Restart,omitempty"`
	// KillTimeout is how long a stopping task gets between its stop
	// signal and being killed.
	KillTimeout time.Duration `json:"KillTimeout,omitempty"`
	// ShutdownDelay is how long a stopping task waits between the
	// deregistration of its services and its stop signal.
	ShutdownDelay time.Duration `json:"ShutdownDelay,omitempty"`
	// Lifecycle makes the task run around the group's main tasks; nil is
	// a main task.
	Lifecycle *Lifecycle `json:"Lifecycle,omitempty"`
	// VolumeMounts mount host volumes of the node into the task.
	VolumeMounts []VolumeMount `json:"VolumeMounts,omitempty"`
	// DispatchPayload is a dispatched job's payload, which the agent
	// writes into the task's /local directory before it starts.
	DispatchPayload *DispatchPayload `json:"DispatchPayload,omitempty"`
}

// DispatchPayload is a file of the task's /local directory: File, a
// relative path inside it (validated by the servers, checked again by the
// agent), holding Data (base64 in JSON).
type DispatchPayload struct {
	File string `json:"File"`
	Data []byte `json:"Data,omitempty"`
}

// VolumeMount mounts a host volume the node declared (Register.HostVolumes)
// into a task: a directory of a wasm module's filesystem, a bind mount of
// a container. The servers place the task only on a node that declares
// the volume; the agent refuses to start a task whose volume it does not
// have (declared since), and mounts it read-only when either side says so.
type VolumeMount struct {
	Volume      string `json:"Volume"`     // the job's name for it, for messages
	HostVolume  string `json:"HostVolume"` // the node's name for it
	Destination string `json:"Destination"`
	ReadOnly    bool   `json:"ReadOnly,omitempty"`
}

// TaskConfig is the driver's part of a task. Fields of the other driver
// are empty.
type TaskConfig struct {
	// wasm: the module by digest ("sha256:<hex>"), with the name the job
	// used for it (for messages), and how to run it.
	Module       string `json:"Module,omitempty"`
	ModuleDigest string `json:"ModuleDigest,omitempty"`
	Mode         string `json:"Mode,omitempty"` // ModeCommand, ModeHTTP or ModeListener
	// Args follow argv[0] (wasm) or the command (docker).
	Args []string `json:"Args,omitempty"`
	// MaxRequestTime bounds one http-mode request; 0 is the agent's default.
	MaxRequestTime time.Duration `json:"MaxRequestTime,omitempty"`
	// MaxConcurrency bounds concurrent http-mode instances; 0 is no bound.
	MaxConcurrency int `json:"MaxConcurrency,omitempty"`
	// MaxRuntime ends a command-mode run; 0 is no bound.
	MaxRuntime time.Duration `json:"MaxRuntime,omitempty"`

	// docker: the image (on the node, or pulled), the command that
	// replaces the image's Cmd, and the allocation's port labels the
	// container publishes besides the task's own.
	Image   string   `json:"Image,omitempty"`
	Command string   `json:"Command,omitempty"`
	Ports   []string `json:"Ports,omitempty"`
}

// Resources is what the task may use on the node.
type Resources struct {
	CPU      int `json:"CPU"`      // MHz: docker CPU shares
	MemoryMB int `json:"MemoryMB"` // a wasm instance's linear memory, a container's memory
	// Ports are the labels of the ports the task itself asked for, in
	// order; their numbers are in Alloc.Ports. A wasm task serves on the
	// first, which the servers make the one it serves on (its config's
	// port, or its group's only port, which may be a group port); a
	// container publishes them all.
	Ports []string `json:"Ports,omitempty"`
}

// Service is a port of the task registered in the discovery registry,
// with the health checks the agent runs.
type Service struct {
	Name string   `json:"Name"`
	Tags []string `json:"Tags,omitempty"`
	// CanaryTags replace Tags while the allocation is a canary.
	CanaryTags []string `json:"CanaryTags,omitempty"`
	Port       string   `json:"Port,omitempty"` // a port label of the allocation
	Checks     []Check  `json:"Checks,omitempty"`
}

// Check is a health check of a service.
type Check struct {
	Type     string        `json:"Type"` // "http" or "tcp"
	Path     string        `json:"Path,omitempty"`
	Interval time.Duration `json:"Interval"`
	Timeout  time.Duration `json:"Timeout"`
	// CheckRestart, if set, restarts the task when the check keeps failing.
	CheckRestart *CheckRestart `json:"CheckRestart,omitempty"`
}

// CheckRestart restarts a task whose check failed Limit times in a row,
// counting from Grace after the task started; the restart goes through
// the task's restart policy.
type CheckRestart struct {
	Limit int           `json:"Limit"` // 0 never restarts
	Grace time.Duration `json:"Grace"`
}

// RestartPolicy says what the agent does when a task fails: at most
// Attempts restarts within Interval, each after Delay (plus up to 25%
// jitter); then Mode "fail" fails the task and "delay" waits for the
// interval to end.
type RestartPolicy struct {
	Attempts int           `json:"Attempts"`
	Interval time.Duration `json:"Interval"`
	Delay    time.Duration `json:"Delay"`
	Mode     string        `json:"Mode"` // "fail" or "delay"
}

// Lifecycle hooks.
const (
	HookPrestart  = "prestart"
	HookPoststart = "poststart"
	HookPoststop  = "poststop"
)

// Lifecycle makes a task run around the group's main tasks.
type Lifecycle struct {
	Hook    string `json:"Hook"` // HookPrestart, HookPoststart or HookPoststop
	Sidecar bool   `json:"Sidecar,omitempty"`
}
