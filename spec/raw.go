package spec

import "github.com/hashicorp/hcl/v2"

// The raw structs mirror the HCL: decoder fills them (gohcl's tags and
// rules), then converter turns them into the typed Job. Every attribute is
// optional here; what is required is Validate's business, so that JSON
// jobs get the same checks. Each block keeps its body and range, from
// which converter builds the index that gives Validate's problems their
// source positions.
//
// An attribute of type hcl.Expression is not evaluated by decoder:
// templates (env, args, command, constraint attributes) are read by
// converter.template, which keeps runtime references as written.

type rawJob struct {
	ID          string            `hcl:"id,label"`
	Type        string            `hcl:"type,optional"`
	Region      string            `hcl:"region,optional"`
	Datacenters []string          `hcl:"datacenters,optional"`
	Priority    int               `hcl:"priority,optional"`
	Meta        map[string]string `hcl:"meta,optional"`
	MetaBlock   *rawMap           `hcl:"meta,block"`
	Constraints []*rawConstraint  `hcl:"constraint,block"`
	Affinities  []*rawAffinity    `hcl:"affinity,block"`
	Spreads     []*rawSpread      `hcl:"spread,block"`
	Update      *rawUpdate        `hcl:"update,block"`
	Periodic    *rawPeriodic      `hcl:"periodic,block"`
	Param       *rawParameterized `hcl:"parameterized,block"`
	Groups      []*rawGroup       `hcl:"group,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawGroup struct {
	Name          string            `hcl:"name,label"`
	Count         int               `hcl:"count,optional"`
	Meta          map[string]string `hcl:"meta,optional"`
	MetaBlock     *rawMap           `hcl:"meta,block"`
	Constraints   []*rawConstraint  `hcl:"constraint,block"`
	Affinities    []*rawAffinity    `hcl:"affinity,block"`
	Spreads       []*rawSpread      `hcl:"spread,block"`
	Restart       *rawRestart       `hcl:"restart,block"`
	Reschedule    *rawReschedule    `hcl:"reschedule,block"`
	Update        *rawUpdate        `hcl:"update,block"`
	Disconnect    *rawDisconnect    `hcl:"disconnect,block"`
	ShutdownDelay string            `hcl:"shutdown_delay,optional"`
	Networks      []*rawNetwork     `hcl:"network,block"`
	Services      []*rawService     `hcl:"service,block"`
	Volumes       []*rawVolume      `hcl:"volume,block"`
	Tasks         []*rawTask        `hcl:"task,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawTask struct {
	Name          string              `hcl:"name,label"`
	Driver        string              `hcl:"driver,optional"`
	Config        *rawConfig          `hcl:"config,block"`
	Env           hcl.Expression      `hcl:"env,optional"`
	EnvBlock      *rawMap             `hcl:"env,block"`
	Restart       *rawRestart         `hcl:"restart,block"`
	Resources     *rawResources       `hcl:"resources,block"`
	Services      []*rawService       `hcl:"service,block"`
	Meta          map[string]string   `hcl:"meta,optional"`
	MetaBlock     *rawMap             `hcl:"meta,block"`
	KillTimeout   string              `hcl:"kill_timeout,optional"`
	ShutdownDelay string              `hcl:"shutdown_delay,optional"`
	Lifecycle     *rawLifecycle       `hcl:"lifecycle,block"`
	VolumeMounts  []*rawVolumeMount   `hcl:"volume_mount,block"`
	Payload       *rawDispatchPayload `hcl:"dispatch_payload,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawConfig struct {
	// wasm
	Module         string      `hcl:"module,optional"`
	Mode           string      `hcl:"mode,optional"`
	Port           string      `hcl:"port,optional"`
	MaxRequestTime string      `hcl:"max_request_time,optional"`
	MaxConcurrency int         `hcl:"max_concurrency,optional"`
	MaxRuntime     string      `hcl:"max_runtime,optional"`
	Mounts         []*rawMount `hcl:"mount,block"`
	// both
	Args hcl.Expression `hcl:"args,optional"`
	// docker
	Image   string         `hcl:"image,optional"`
	Command hcl.Expression `hcl:"command,optional"`
	Ports   []string       `hcl:"ports,optional"`
	// Volumes is Nomad's docker volumes = ["/host:/container"]: raw
	// host paths, refused with a message naming host volumes.
	Volumes hcl.Expression `hcl:"volumes,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawMount struct {
	Source   string `hcl:"source,optional"`
	Target   string `hcl:"target,optional"`
	Readonly bool   `hcl:"readonly,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawVolume struct {
	Name     string `hcl:"name,label"`
	Type     string `hcl:"type,optional"`
	Source   string `hcl:"source,optional"`
	ReadOnly bool   `hcl:"read_only,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawVolumeMount struct {
	Volume      string `hcl:"volume,optional"`
	Destination string `hcl:"destination,optional"`
	ReadOnly    bool   `hcl:"read_only,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawRestart struct {
	Attempts int    `hcl:"attempts,optional"`
	Interval string `hcl:"interval,optional"`
	Delay    string `hcl:"delay,optional"`
	Mode     string `hcl:"mode,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawReschedule struct {
	Attempts      int    `hcl:"attempts,optional"`
	Interval      string `hcl:"interval,optional"`
	Delay         string `hcl:"delay,optional"`
	DelayFunction string `hcl:"delay_function,optional"`
	MaxDelay      string `hcl:"max_delay,optional"`
	Unlimited     bool   `hcl:"unlimited,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawUpdate struct {
	MaxParallel      int    `hcl:"max_parallel,optional"`
	Stagger          string `hcl:"stagger,optional"`
	MinHealthyTime   string `hcl:"min_healthy_time,optional"`
	HealthyDeadline  string `hcl:"healthy_deadline,optional"`
	ProgressDeadline string `hcl:"progress_deadline,optional"`
	HealthCheck      string `hcl:"health_check,optional"`
	Canary           int    `hcl:"canary,optional"`
	AutoRevert       bool   `hcl:"auto_revert,optional"`
	AutoPromote      bool   `hcl:"auto_promote,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawDisconnect struct {
	LostAfter string `hcl:"lost_after,optional"`
	Replace   *bool  `hcl:"replace,optional"`
	Reconcile string `hcl:"reconcile,optional"`
	StopAfter string `hcl:"stop_after,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawLifecycle struct {
	Hook    string `hcl:"hook,optional"`
	Sidecar bool   `hcl:"sidecar,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawConstraint struct {
	Attribute hcl.Expression `hcl:"attribute,optional"`
	Operator  string         `hcl:"operator,optional"`
	Value     hcl.Expression `hcl:"value,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawAffinity struct {
	Attribute hcl.Expression `hcl:"attribute,optional"`
	Operator  string         `hcl:"operator,optional"`
	Value     hcl.Expression `hcl:"value,optional"`
	Weight    int            `hcl:"weight,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawSpread struct {
	Attribute hcl.Expression `hcl:"attribute,optional"`
	Weight    int            `hcl:"weight,optional"`
	Targets   []*rawTarget   `hcl:"target,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawTarget struct {
	Value   string `hcl:"value,label"`
	Percent int    `hcl:"percent,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawResources struct {
	CPU      int           `hcl:"cpu,optional"`
	Memory   int           `hcl:"memory,optional"`
	Networks []*rawNetwork `hcl:"network,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawNetwork struct {
	MBits int        `hcl:"mbits,optional"`
	Mode  string     `hcl:"mode,optional"`
	Ports []*rawPort `hcl:"port,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawPort struct {
	Label  string `hcl:"label,label"`
	Static int    `hcl:"static,optional"`
	To     int    `hcl:"to,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawService struct {
	Name       string      `hcl:"name,optional"`
	Tags       []string    `hcl:"tags,optional"`
	CanaryTags []string    `hcl:"canary_tags,optional"`
	Port       string      `hcl:"port,optional"`
	Checks     []*rawCheck `hcl:"check,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawCheck struct {
	Type         string           `hcl:"type,optional"`
	Path         string           `hcl:"path,optional"`
	Interval     string           `hcl:"interval,optional"`
	Timeout      string           `hcl:"timeout,optional"`
	CheckRestart *rawCheckRestart `hcl:"check_restart,block"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawCheckRestart struct {
	Limit int    `hcl:"limit,optional"`
	Grace string `hcl:"grace,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

// rawMap is the block form of a string map: meta { k = "v" }, env { K = "v" }.
type rawMap struct {
	Attrs    hcl.Attributes `hcl:",remain"`
	DefRange hcl.Range      `hcl:",def_range"`
}

type rawPeriodic struct {
	Cron            string   `hcl:"cron,optional"`
	Crons           []string `hcl:"crons,optional"`
	ProhibitOverlap bool     `hcl:"prohibit_overlap,optional"`
	TimeZone        string   `hcl:"time_zone,optional"`
	Enabled         *bool    `hcl:"enabled,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawParameterized struct {
	Payload      string   `hcl:"payload,optional"`
	MetaRequired []string `hcl:"meta_required,optional"`
	MetaOptional []string `hcl:"meta_optional,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawDispatchPayload struct {
	File string `hcl:"file,optional"`

	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}
