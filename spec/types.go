package spec

import (
	"encoding/json"
	"fmt"
	"time"
)

// Job is a parsed, defaulted job: the canonical form every other package sees.
// Its JSON encoding (field names as tagged below) is the wire form between
// the CLI and the coordinator and the form stored in Raft.
type Job struct {
	ID          string            `json:"ID"`
	Type        string            `json:"Type"`
	Region      string            `json:"Region,omitempty"`
	Datacenters []string          `json:"Datacenters,omitempty"`
	Priority    int               `json:"Priority"`
	Meta        map[string]string `json:"Meta,omitempty"`
	Constraints []*Constraint     `json:"Constraints,omitempty"`
	Affinities  []*Affinity       `json:"Affinities,omitempty"`
	Spreads     []*Spread         `json:"Spreads,omitempty"`
	Update      *Update           `json:"Update,omitempty"`
	// Periodic makes the job a template of child jobs launched at each
	// tick (periodic.go): it is never placed itself.
	Periodic *Periodic `json:"Periodic,omitempty"`
	// Parameterized makes the job a template of child jobs launched by
	// dispatch (dispatch.go): it is never placed itself either.
	Parameterized *Parameterized `json:"Parameterized,omitempty"`
	// ParentID is set in a child job only: the periodic or parameterized
	// job it was launched from. Payload is a dispatched child's payload.
	ParentID string   `json:"ParentID,omitempty"`
	Payload  []byte   `json:"Payload,omitempty"`
	Groups   []*Group `json:"Groups"`
}

// Group is the unit of placement: Count copies of its tasks, each copy on one node.
type Group struct {
	Name        string            `json:"Name"`
	Count       int               `json:"Count"`
	Meta        map[string]string `json:"Meta,omitempty"`
	Constraints []*Constraint     `json:"Constraints,omitempty"`
	Affinities  []*Affinity       `json:"Affinities,omitempty"`
	Spreads     []*Spread         `json:"Spreads,omitempty"`
	Restart     *RestartPolicy    `json:"Restart,omitempty"` // default for its tasks
	Reschedule  *Reschedule       `json:"Reschedule,omitempty"`
	Update      *Update           `json:"Update,omitempty"` // overrides the job's
	Disconnect  *Disconnect       `json:"Disconnect,omitempty"`
	// ShutdownDelay is how long a stopping allocation waits between
	// deregistering its services and stopping its tasks, so clients that
	// resolved it just before finish their requests; its tasks inherit it.
	ShutdownDelay Duration `json:"ShutdownDelay,omitempty"`
	// Networks are the group's shared ports: every task may use them.
	Networks []*Network `json:"Networks,omitempty"`
	Services []*Service `json:"Services,omitempty"`
	// Volumes are the host volumes the group's tasks may mount: the
	// group is placed only on nodes whose agent declares each of them.
	Volumes []*Volume `json:"Volumes,omitempty"`
	Tasks   []*Task   `json:"Tasks"`
}

// Volume types.
const VolumeTypeHost = "host"

// Volume asks for a host volume (Nomad's volume block): a directory the
// operator of an agent declared under a name (strata agent -host-volume
// NAME=PATH), never a path the job chooses.
type Volume struct {
	Name     string `json:"Name"`   // how the group's volume_mount blocks name it
	Type     string `json:"Type"`   // VolumeTypeHost
	Source   string `json:"Source"` // the host volume's name on the node
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

// VolumeMount mounts a group's volume into a task at Destination. It is
// read-only when the mount or its volume says so.
type VolumeMount struct {
	Volume      string `json:"Volume"`
	Destination string `json:"Destination"`
	ReadOnly    bool   `json:"ReadOnly,omitempty"`
}

// Task is one workload inside a group.
type Task struct {
	Name      string            `json:"Name"`
	Driver    string            `json:"Driver"`
	Config    TaskConfig        `json:"Config"`
	Env       map[string]string `json:"Env,omitempty"`
	Restart   *RestartPolicy    `json:"Restart"`
	Resources Resources         `json:"Resources"`
	Services  []*Service        `json:"Services,omitempty"`
	Meta      map[string]string `json:"Meta,omitempty"`
	// KillTimeout is how long a stopping task gets before it is killed.
	KillTimeout Duration `json:"KillTimeout,omitempty"`
	// ShutdownDelay: when 0, the group's (Group.TaskShutdownDelay).
	ShutdownDelay Duration   `json:"ShutdownDelay,omitempty"`
	Lifecycle     *Lifecycle `json:"Lifecycle,omitempty"`
	// VolumeMounts mount the group's volumes into the task.
	VolumeMounts []*VolumeMount `json:"VolumeMounts,omitempty"`
	// DispatchPayload writes a dispatched job's payload into the task.
	DispatchPayload *DispatchPayload `json:"DispatchPayload,omitempty"`
}

// TaskConfig holds the driver-specific configuration. Fields that do not
// belong to the task's driver must be empty (Validate says so).
type TaskConfig struct {
	// wasm driver.
	Module string `json:"Module,omitempty"` // "name@version" or "sha256:<hex>"
	Mode   string `json:"Mode,omitempty"`   // "command", "http" or "listener"
	// Port is the label of the port an http or listener task serves on:
	// one of its own or its group's. Empty: the task's first own port,
	// else its group's only port (Group.ServedPort).
	Port string   `json:"Port,omitempty"`
	Args []string `json:"Args,omitempty"` // also docker
	// MaxRequestTime bounds one request in http mode (0: the agent's default).
	MaxRequestTime Duration `json:"MaxRequestTime,omitempty"`
	// MaxConcurrency bounds concurrent instances in http mode (0: no bound).
	MaxConcurrency int `json:"MaxConcurrency,omitempty"`
	// MaxRuntime ends a command-mode run after this long (0: no bound).
	MaxRuntime Duration `json:"MaxRuntime,omitempty"`
	// Mounts are raw host paths, which Validate refuses: a job asks for
	// a host volume instead (Group.Volumes, Task.VolumeMounts). Kept so a
	// job that has one is told so, rather than refused as malformed.
	Mounts []*Mount `json:"Mounts,omitempty"`

	// ModuleDigest is filled in by the coordinator when it registers the
	// job: the resolved "sha256:<hex>" of Module, which makes a job version
	// immutable even if a later push adds versions. Clients leave it empty.
	ModuleDigest string `json:"ModuleDigest,omitempty"`

	// docker driver.
	Image   string   `json:"Image,omitempty"`
	Command string   `json:"Command,omitempty"`
	Ports   []string `json:"Ports,omitempty"` // port labels the container exposes
}

// Mount is a raw host path mount (refused: see TaskConfig.Mounts).
type Mount struct {
	Source   string `json:"Source"`
	Target   string `json:"Target"`
	Readonly bool   `json:"Readonly,omitempty"`
}

// Constraint restricts placement to nodes whose attribute satisfies
// Operator against Value (Nomad's operators, distinct_hosts included).
type Constraint struct {
	Attribute string `json:"Attribute,omitempty"` // "${attr.kernel.name}", "${node.datacenter}", …
	Operator  string `json:"Operator"`            // default "="
	Value     string `json:"Value,omitempty"`
}

// Affinity prefers (Weight > 0) or avoids (Weight < 0) nodes.
type Affinity struct {
	Attribute string `json:"Attribute"`
	Operator  string `json:"Operator"`
	Value     string `json:"Value,omitempty"`
	Weight    int    `json:"Weight"` // -100..100, not 0; default 50
}

// Spread distributes allocations over an attribute's values.
type Spread struct {
	Attribute string          `json:"Attribute"`
	Weight    int             `json:"Weight"` // 0..100; default 50
	Targets   []*SpreadTarget `json:"Targets,omitempty"`
}

// SpreadTarget is the share of allocations wanted for one value.
type SpreadTarget struct {
	Value   string `json:"Value"`
	Percent int    `json:"Percent"`
}

// Update is the rolling-update strategy.
type Update struct {
	MaxParallel     int      `json:"MaxParallel"`
	Stagger         Duration `json:"Stagger"`
	MinHealthyTime  Duration `json:"MinHealthyTime"`
	HealthyDeadline Duration `json:"HealthyDeadline"`
	// ProgressDeadline fails a deployment that has not made progress
	// (an allocation of the new version becoming healthy) for this long.
	ProgressDeadline Duration `json:"ProgressDeadline"`
	// HealthCheck says what makes an allocation healthy: "checks" (its
	// services' checks passing, and its tasks running) or "task_states"
	// (its tasks running), for MinHealthyTime without interruption.
	HealthCheck string `json:"HealthCheck"`
	Canary      int    `json:"Canary,omitempty"`
	AutoRevert  bool   `json:"AutoRevert,omitempty"`
	AutoPromote bool   `json:"AutoPromote,omitempty"`
}

// Update.HealthCheck values.
const (
	HealthChecks     = "checks"
	HealthTaskStates = "task_states"
)

// Reschedule says how failed allocations are replaced on other nodes.
type Reschedule struct {
	Attempts      int      `json:"Attempts"`
	Interval      Duration `json:"Interval"`
	Delay         Duration `json:"Delay"`
	DelayFunction string   `json:"DelayFunction"` // constant, exponential, fibonacci
	MaxDelay      Duration `json:"MaxDelay"`
	Unlimited     bool     `json:"Unlimited,omitempty"`
}

// Disconnect says what happens to a group's allocations while their node
// is unreachable (edge nodes behind flaky links).
type Disconnect struct {
	// LostAfter: how long after the node is declared down its allocations
	// stay "unknown" before they are lost (0: lost at once).
	LostAfter Duration `json:"LostAfter,omitempty"`
	// Replace: whether an unknown allocation is replaced elsewhere.
	Replace *bool `json:"Replace,omitempty"`
	// Reconcile: which copy survives reconnection: best_score,
	// keep_original, keep_replacement, longest_running.
	Reconcile string `json:"Reconcile,omitempty"`
	// StopOnClientAfter: the agent stops the tasks itself after this long
	// without the servers.
	StopOnClientAfter Duration `json:"StopOnClientAfter,omitempty"`
}

// Lifecycle makes a task run around the group's main tasks.
type Lifecycle struct {
	Hook    string `json:"Hook"` // prestart, poststart, poststop
	Sidecar bool   `json:"Sidecar,omitempty"`
}

// Resources is what one task asks of its node.
type Resources struct {
	CPU      int        `json:"CPU"`      // MHz
	MemoryMB int        `json:"MemoryMB"` // MB
	Networks []*Network `json:"Networks,omitempty"`
}

// Network asks for bandwidth and ports.
type Network struct {
	// Mode is Nomad's network mode: only "host" (the default, written
	// or not), where tasks bind the node's ports.
	Mode  string  `json:"Mode,omitempty"`
	MBits int     `json:"MBits,omitempty"`
	Ports []*Port `json:"Ports,omitempty"`
}

// Port is a labelled port. Static == 0 asks for a dynamic port.
type Port struct {
	Label  string `json:"Label"`
	Static int    `json:"Static,omitempty"`
	To     int    `json:"To,omitempty"`
}

// Service registers a task's port in the discovery registry.
type Service struct {
	Name string   `json:"Name"`
	Tags []string `json:"Tags,omitempty"`
	// CanaryTags replace Tags while the allocation is an unpromoted
	// canary of a deployment; default ["canary"].
	CanaryTags []string `json:"CanaryTags,omitempty"`
	Port       string   `json:"Port,omitempty"` // a port label of the task
	Checks     []*Check `json:"Checks,omitempty"`
}

// Check is a health check of a service.
type Check struct {
	Type     string   `json:"Type"` // "http" or "tcp"
	Path     string   `json:"Path,omitempty"`
	Interval Duration `json:"Interval"`
	Timeout  Duration `json:"Timeout"`
	// CheckRestart, if set, restarts the task when the check fails.
	CheckRestart *CheckRestart `json:"CheckRestart,omitempty"`
}

// CheckRestart restarts a task whose check failed Limit times in a row,
// counting from Grace after the task started (Nomad's check_restart).
// The restart goes through the task's restart policy like any failure.
type CheckRestart struct {
	Limit int      `json:"Limit"` // consecutive failures; 0 never restarts
	Grace Duration `json:"Grace"` // default 1s
}

// RestartPolicy says what the agent does when a task exits or fails.
type RestartPolicy struct {
	Attempts int      `json:"Attempts"`
	Interval Duration `json:"Interval"`
	Delay    Duration `json:"Delay"`
	Mode     string   `json:"Mode"` // "fail" or "delay"
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("15s") in JSON, so the wire form stays readable.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"15s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Ports returns every port the task asks for, in declaration order.
func (t *Task) Ports() []*Port {
	var ps []*Port
	for _, n := range t.Resources.Networks {
		if n != nil {
			ps = append(ps, n.Ports...)
		}
	}
	return ps
}

// AllPorts returns every port the group asks for: the ports of its own
// network blocks, then each task's (Task.Ports), in declaration order.
// Labels are unique in a valid group, since its tasks share a node; the
// scheduler places them all.
func (g *Group) AllPorts() []*Port {
	var ps []*Port
	for _, n := range g.Networks {
		if n != nil {
			ps = append(ps, n.Ports...)
		}
	}
	for _, t := range g.Tasks {
		if t != nil {
			ps = append(ps, t.Ports()...)
		}
	}
	return ps
}

// ServedPort is the label of the port the wasm task t serves on in mode
// http or listener: its config's port, else its own first port, else the
// group's only port; "" when none of these says (Validate refuses that).
func (g *Group) ServedPort(t *Task) string {
	if t.Config.Port != "" {
		return t.Config.Port
	}
	for _, p := range t.Ports() {
		if p != nil {
			return p.Label
		}
	}
	var group []string
	for _, n := range g.Networks {
		if n == nil {
			continue
		}
		for _, p := range n.Ports {
			if p != nil {
				group = append(group, p.Label)
			}
		}
	}
	if len(group) == 1 {
		return group[0]
	}
	return ""
}

// TaskShutdownDelay is how long t waits between the deregistration of its
// services and its stop: its own ShutdownDelay when set, else the group's.
func (g *Group) TaskShutdownDelay(t *Task) time.Duration {
	if t.ShutdownDelay > 0 {
		return t.ShutdownDelay.D()
	}
	return g.ShutdownDelay.D()
}

// Lookup returns the group named name, or nil.
func (j *Job) Lookup(name string) *Group {
	for _, g := range j.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}
