// Package spec owns Strata's job language: it turns an HCL job file into a
// typed, defaulted, validated *Job, and defines the Job's JSON form (the
// tags in types.go; docs/job-json.md), which the CLI sends to the
// coordinator and Raft stores.
//
// It must not do I/O beyond the bytes it is given: no files, no network, no
// clock, no environment, no logging. Problems are returned, never printed.
//
// # Pipeline
//
//	ParseWithVars(filename, src, vars)   (Parse: no outside values)
//	  hclsyntax.ParseConfig        syntax; a syntax error stops here
//	  variable blocks + vars       the scope: var.<name> (defaults < -var-file < -var)
//	  decoder    -> raw structs    unknown blocks/attributes, wrong types (gohcl's rules and messages)
//	  converter  -> *Job + index   durations, maps, templates; index: structural key -> source range
//	  canonicalize(job, written)   defaults for what the file leaves out (the only place defaults are applied)
//	  validate(job)                the same checks as Validate, as problems with keys
//	  problems -> Diagnostics      each key looked up in the index: the exact source range
//
// Validate and Canonicalize work on a typed Job alone (the coordinator's JSON
// input); their problems carry a Path like
// `group "web" > task "hello" > config > module` instead of a range. A
// problem about something the file does not write (a missing driver) points
// at the enclosing block. Blocks are keyed by position, not label, so a
// problem inside the second of two tasks named "hello" points at the second.
// FormatSource rewrites a file in canonical layout (hclwrite).
//
// To grow the language: add a field to types.go, a tagged field to the raw
// struct (raw.go), a line to the converter, the default to canonicalize and
// the rule to validate; then a line below and in docs/job-json.md.
//
// # The language
//
//	variable "<name>" {           zero or more, before or after the job
//	  type        = number        a type constraint: string, number, bool, list(string), map(string), any...
//	  default     = 3             no default: a value must come from -var or -var-file
//	  description = "..."
//	}
//	job "<id>" {                  exactly one per file; id: [A-Za-z0-9_.-]{1,128}, not starting with -
//	  type        = "service"     service | batch | system
//	  region      = "global"
//	  datacenters = ["dc1"]       empty: any datacenter
//	  priority    = 50            1..100
//	  meta { k = "v" }            or meta = { k = "v" }; also in group and task
//	  constraint {                zero or more; also in group
//	    attribute = "${attr.kernel.name}"   one node reference (see "Runtime references")
//	    operator  = "="           = != > >= < <= regexp set_contains set_contains_any
//	                              version semver is_set is_not_set distinct_hosts
//	    value     = "linux"       regexp: compiles; version/semver: ">= 1.2, < 2";
//	  }                           set_contains*: "a,b"; is_set, is_not_set: none;
//	                              distinct_hosts: no attribute, value "true"/"false"/none
//	  affinity {                  zero or more; also in group; not in system jobs
//	    attribute = "${node.datacenter}"    operators: as constraint, without is_set,
//	    operator  = "="                     is_not_set, distinct_hosts
//	    value     = "dc1"
//	    weight    = 50            -100..100, not 0
//	  }
//	  spread {                    zero or more; also in group; not in system jobs
//	    attribute = "${node.datacenter}"
//	    weight    = 50            1..100
//	    target "dc1" { percent = 70 }       values unique, percents 0..100 adding up to <= 100
//	  }
//	  update {                    service and system jobs; also in group, which overrides it field by field
//	    max_parallel     = 1      0: replace all at once
//	    stagger          = "30s"  > 0
//	    min_healthy_time = "10s"  < healthy_deadline
//	    healthy_deadline = "5m"   > 0
//	    progress_deadline = "10m" >= healthy_deadline: fail when nothing became healthy this long
//	    health_check     = "checks"   checks (service checks pass, tasks run) | task_states
//	    canary           = 0      new instances run beside the old until promoted; = count: blue/green
//	    auto_revert      = false
//	    auto_promote     = false  needs canary > 0
//	  }
//	  group "<name>" {            one or more, unique names
//	    count = 1                 0..100000; system jobs: 0 or 1
//	    restart { ... }           as in task: the default of the group's tasks
//	    reschedule {              service and batch jobs
//	      attempts       = 0      with interval > 0; not with unlimited = true
//	      interval       = "0s"
//	      delay          = "30s"  >= 5s
//	      delay_function = "exponential"    constant | exponential | fibonacci
//	      max_delay      = "1h"   >= delay unless constant
//	      unlimited      = true
//	    }
//	    disconnect {              what happens while the node is unreachable
//	      lost_after = "12h"      tasks keep running this long, then are lost; not with stop_after
//	      stop_after = "5m"       the agent stops the tasks itself (service, batch)
//	      replace    = true       place a replacement meanwhile
//	      reconcile  = "keep_original"   on reconnect keep: keep_original | keep_replacement
//	    }                                (Nomad's best_score, longest_running: refused)
//	    shutdown_delay = "0s"     between deregistering services and stopping tasks; tasks inherit it
//	    network {                 zero or more: ports shared by the group's tasks
//	      mode  = "host"          the only mode (bridge, none, cni/* refused)
//	                              mbits refused: bandwidth is not reserved
//	      port "http" { static = 8080  to = 80 }
//	    }
//	    service { ... }           as in task; port: any port of the group; name "<job>-<group>"
//	    volume "<name>" {         zero or more, unique names: a host volume the tasks may mount;
//	      type      = "host"      required (csi is refused)     the group is placed only on nodes
//	      source    = "data"      required: the host volume's   whose agent declares source
//	                              name (strata agent -host-volume data=/srv/data[:ro])
//	      read_only = false       a read-write request is not placed where the volume is :ro
//	    }
//	    task "<name>" {           one or more, unique names in the group
//	      driver = "wasm"         required: wasm | docker
//	      config {                wasm:
//	        module = "hello@0.1.0"      required: "name@1.2.3" (semver) or "sha256:<hex>"
//	        mode   = "http"             required: command | http | listener
//	        port   = "http"             http, listener: the port served, the task's own or
//	                                    its group's; default: the task's first own port,
//	                                    else the group's only port
//	        args   = ["-v"]             also docker
//	        max_request_time = "30s"    http only
//	        max_concurrency  = 64       http only
//	        max_runtime      = "1h"     command only
//	                                    mount { source = ... } (both drivers) and docker's
//	                                    volumes = [...] are host paths: refused, naming
//	                                    host volumes (volume, volume_mount) instead
//	                                    docker: image (required), args, command,
//	                                    ports = ["http"] (labels of the task or group)
//	      }
//	      env { KEY = "value" }   or env = { "KEY" = "value" }; values are templates
//	      restart { attempts = 2  interval = "30m"  delay = "15s"  mode = "fail" }   mode: fail | delay
//	      resources {
//	        cpu    = 100          MHz, >= 1
//	        memory = 300          MB, >= 10
//	        network {             zero or more (mbits refused)
//	          port "http" { static = 8080  to = 80 }   labels unique in the group; static 1..65535
//	        }
//	      }
//	      service {               zero or more
//	        name = "..."          a DNS label; default "<job>-<group>-<task>"
//	        tags = ["prod"]
//	        canary_tags = ["canary"]    the tags while an unpromoted canary (default ["canary"])
//	        port = "http"         a port of this task or of its group; required when there are checks
//	        check {               zero or more; not on a wasm task in mode command
//	          type     = "http"   http (path required, starting with "/") | tcp
//	          path     = "/"
//	          interval = "10s"    >= 1s
//	          timeout  = "2s"     > 0, <= interval
//	        }
//	      }
//	      kill_timeout = "5s"
//	      shutdown_delay = "0s"   0: the group's
//	      volume_mount {          zero or more (both drivers): wasm: a directory of the module's
//	        volume      = "data"  required: a volume of the group      filesystem; docker: a bind mount
//	        destination = "/data" required: absolute, unique in the task
//	        read_only   = true    read-only when the mount or its volume says so
//	      }
//	      lifecycle {             makes the task run around the main tasks
//	        hook    = "prestart"  prestart | poststart (poststop is refused: not run yet)
//	        sidecar = false       keep it running (not with poststop)
//	      }                       a group needs one task without lifecycle
//	    }
//	  }
//	}
//
// (Several arguments on one line, as above, are shorthand for this page: HCL
// allows a single argument in a one-line block. DESIGN.md's example job is
// written that way and does not parse as is; testdata/my-service-*.hcl is
// the same job written out.)
//
// Durations are Go duration strings ("15s", "1h30m"). An attribute set to
// null is an error, not "unset". Unknown blocks and attributes are errors.
// Expressions may use var.<name>, arithmetic and conditionals, not
// functions.
//
// # Runtime references
//
// Constraint, affinity and spread attributes and values, env values, config
// args and the docker command are templates kept for later: `${ref}` is
// resolved by the scheduler (per node) or the agent (per allocation), and
// `$${` is a literal "${", as in HCL. An interpolation that refers only to
// var.* is evaluated at parse time; any other is kept as written. A ref
// names node.datacenter, node.unique.name, node.unique.id, node.class,
// attr.<name> or meta.<name>; env, args and command may also name runtime
// variables NOMAD_<NAME> and STRATA_<NAME> (runtimevars.go lists them;
// any other name is refused), STRATA_PORT_<label> and the like must name a
// port of the group, NOMAD_META_<key> a key of the job's, group's or
// task's meta. Everywhere else, ${...} may only use var.*.
// Interpolate expands a template.
//
// # Defaults
//
//	field                         default                          applied when
//	Job.Type                      "service"                        absent (HCL) / "" (JSON)
//	Job.Region                    "global"                         absent / ""
//	Job.Priority                  50                               absent / 0
//	Constraint.Operator           "="                              absent / ""
//	Affinity.Operator             "="                              absent / ""
//	Affinity.Weight               50                               absent / 0
//	Spread.Weight                 50                               absent / 0
//	Update (written)              1 / 30s / 10s / 5m / 10m / checks /     per field: absent from HCL;
//	                              0 / false / false (max_parallel, stagger,  JSON: Stagger, HealthyDeadline,
//	                              min_healthy_time, healthy_deadline,        ProgressDeadline when 0,
//	                              progress_deadline, health_check, canary,   HealthCheck when ""
//	                              auto_*)
//	Group.Update                  the job's update, else the default   no update block / null; batch: none
//	Group.Count                   1                                absent from HCL only: 0 is a valid count
//	Group.Restart                 none (tasks use the job type's)  no restart block
//	Group.Reschedule              service: 0 / 0s / 30s / exponential / 1h / unlimited
//	                              batch:   1 / 24h / 5s / constant / 0s / limited
//	                              system:  none                   no reschedule block / null; per field:
//	                                                               absent (HCL), Delay, DelayFunction, MaxDelay
//	                                                               (unless constant) when zero (JSON)
//	Reschedule.Unlimited          false when attempts > 0 is written, else as above
//	Disconnect.Replace            true                             absent / null
//	Disconnect.Reconcile          "keep_original"                  absent / ""
//	Task.Restart                  the group's restart, else by type: per field: absent (HCL);
//	                              service, system: 2 / 30m / 15s / "fail"   Interval, Mode when zero (JSON)
//	                              batch:           3 / 24h / 15s / "fail"   (Attempts, Delay: a 0 is real)
//	Task.KillTimeout              5s                               absent / 0
//	Task.ShutdownDelay            0: the group's (Group.TaskShutdownDelay)
//	Service.CanaryTags            ["canary"]                       absent / empty
//	Resources.CPU                 100 (MHz)                        absent / 0
//	Resources.MemoryMB            300 (MB)                         absent / 0
//	Service.Name                  task: "<job>-<group>-<task>";    absent / ""
//	                              group: "<job>-<group>"
//	Check.Interval                10s                              absent / 0
//	Check.Timeout                 2s, or the interval if shorter   absent / 0
//
// A value written in the file is never replaced by a default: "priority = 0"
// is reported, not turned into 50. Canonicalize also turns empty lists and
// maps into nil, and Nomad's affinity operator "set_contains_all" into
// "set_contains", so a job survives a JSON round trip unchanged.
package spec
