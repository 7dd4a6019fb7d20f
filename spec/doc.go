// Package spec owns Strata's job language: it turns an HCL job file into a
// typed, defaulted, validated *Job, and defines the Job's JSON form (the
// tags in types.go), which the CLI sends to the coordinator and Raft stores.
//
// It must not do I/O beyond the bytes it is given: no files, no network, no
// clock, no environment, no logging. Problems are returned, never printed.
//
// # Pipeline
//
//	Parse(filename, src)
//	  hclsyntax.ParseConfig        syntax; a syntax error stops here
//	  decodeBody -> raw structs    unknown blocks/attributes, wrong types (gohcl's rules and messages)
//	  converter  -> *Job + index   durations, maps; index: structural key -> source range
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
//
// To grow the language (constraint, affinity, spread, update, reschedule,
// ...): add a field to types.go, a tagged field to the raw struct, a line to
// the converter, the default to canonicalize and the rule to validate.
//
// # The language (this version)
//
//	job "<id>" {                  exactly one per file; id: [A-Za-z0-9_.-]{1,128}
//	  type        = "service"     batch, system: "not supported yet"
//	  region      = "global"
//	  datacenters = ["dc1"]       empty: any datacenter
//	  priority    = 50            1..100
//	  meta { k = "v" }            or meta = { k = "v" }; also in group and task
//	  update { max_parallel = 1  stagger = "30s" }   accepted and dropped (see below)
//	  group "<name>" {            one or more, unique names
//	    count = 1                 >= 0
//	    task "<name>" {           one or more, unique names in the group
//	      driver = "wasm"         required: wasm | docker
//	      config {                wasm: module (required, "name@1.2.3" or "sha256:<hex>"),
//	        module = "hello@0.1.0"      mode (required: http; command, listener: not yet), args
//	        mode   = "http"       docker: image (required); the other driver's options are errors
//	      }
//	      env { KEY = "value" }   or env = { "KEY" = "value" }
//	      restart { attempts = 2  interval = "30m"  delay = "15s"  mode = "fail" }   mode: fail | delay
//	      resources {
//	        cpu    = 100          MHz, >= 1
//	        memory = 300          MB, >= 10
//	        network {             zero or more
//	          mbits = 10
//	          port "http" { static = 8080  to = 80 }   labels unique in the task; static 1..65535
//	        }
//	      }
//	      service {               zero or more
//	        name = "..."          a DNS label; default "<job>-<group>-<task>"
//	        tags = ["prod"]
//	        port = "http"         a port label of this task; required when there are checks
//	        check {               zero or more
//	          type     = "http"   http (path required, starting with "/") | tcp
//	          path     = "/"
//	          interval = "10s"    >= 1s
//	          timeout  = "2s"     > 0, <= interval
//	        }
//	      }
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
// null is an error, not "unset". Unknown blocks and attributes are errors,
// except the job-level update block: Nomad job files carry one, so
// update { max_parallel, stagger } is decoded (stagger must be a valid
// duration) and dropped until the scheduler knows rolling updates.
//
// # Defaults
//
//	field                        default                  applied when
//	Job.Type                     "service"                absent (HCL) / "" (JSON)
//	Job.Region                   "global"                 absent / ""
//	Job.Priority                 50                       absent / 0
//	Group.Count                  1                        absent from HCL only: 0 is a valid count
//	Task.Restart                 2 / 30m / 15s / "fail"   no restart block / null
//	RestartPolicy.Attempts       2                        absent from HCL only: 0 means "never restart"
//	RestartPolicy.Interval       30m                      absent / 0
//	RestartPolicy.Delay          15s                      absent from HCL only: 0 means "at once"
//	RestartPolicy.Mode           "fail"                   absent / ""
//	Resources.CPU                100 (MHz)                absent / 0
//	Resources.MemoryMB           300 (MB)                 absent / 0
//	Service.Name                 "<job>-<group>-<task>"   absent / ""
//	Check.Interval               10s                      absent / 0
//	Check.Timeout                2s, or the interval      absent / 0
//	                             if that is shorter
//
// A value written in the file is never replaced by a default: "priority = 0"
// is reported, not turned into 50. Canonicalize also turns empty lists and
// maps into nil, so a job survives a JSON round trip unchanged.
package spec
