package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-run/strata/internal/fsutil"
	"github.com/strata-run/strata/spec"
)

// The job-language commands: job init, fmt, inspect, and the -var and
// -var-file flags of validate, run and inspect. All of them work on local
// files only.

// varFlags are -var NAME=VALUE and -var-file FILE, both repeatable.
type varFlags struct {
	flags []string
	files []string
}

func addVarFlags(fs *flag.FlagSet) *varFlags {
	v := &varFlags{}
	fs.Func("var", "set a variable of the job file: -var NAME=VALUE (repeatable; overrides -var-file)", func(s string) error {
		v.flags = append(v.flags, s)
		return nil
	})
	fs.Func("var-file", "read variables from an HCL file of NAME = VALUE lines (repeatable; a later file wins)", func(s string) error {
		v.files = append(v.files, s)
		return nil
	})
	return v
}

// parseJob reads and parses a job file with the variables, printing
// diagnostics with the offending source lines when it is invalid.
func (v *varFlags) parseJob(env *Env, path string) (*spec.Job, error) {
	src, err := readSource(path)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{path: src}
	vars := spec.Vars{Flags: v.flags}
	for _, f := range v.files {
		b, err := readSource(f)
		if err != nil {
			return nil, fmt.Errorf("-var-file: %w", err)
		}
		vars.Files = append(vars.Files, spec.VarFile{Name: f, Src: b})
		files[f] = b
	}
	job, err := spec.ParseWithVars(path, src, vars)
	if err != nil {
		var diags spec.Diagnostics
		if errors.As(err, &diags) {
			diags.Format(env.Stderr, files, false)
			return nil, &exitError{code: 1, msg: fmt.Sprintf("%s is not a valid job file (%d problem(s))", path, len(diags))}
		}
		return nil, err
	}
	return job, nil
}

// readSource reads a job or variable file, at most one byte more than
// spec.MaxFileSize: spec refuses what is larger, with a message.
func readSource(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, spec.MaxFileSize+1))
}

// printDiags prints a spec error: diagnostics with their source lines, or
// the error as it is.
func printDiags(env *Env, err error, files map[string][]byte) {
	var diags spec.Diagnostics
	if errors.As(err, &diags) {
		diags.Format(env.Stderr, files, false)
		return
	}
	fmt.Fprintf(env.Stderr, "Error: %v\n", err)
}

func runInspect(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "inspect")
	vf := addVarFlags(fs)
	arg, err := parseOne(fs, args, "inspect takes one job file: strata inspect [-var NAME=VALUE]... [-var-file FILE]... FILE.hcl")
	if err != nil {
		return err
	}
	job, err := vf.parseJob(env, arg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(job)
}

func runFmt(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "fmt")
	check := fs.Bool("check", false, "rewrite nothing; list the files not in canonical form and exit 1 if there are any")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("fmt takes one or more job files: strata fmt [-check] FILE...")
	}
	var unformatted []string
	failed := 0
	for _, path := range pos {
		changed, err := fmtFile(path, *check)
		if err != nil {
			src, _ := readSource(path)
			printDiags(env, err, map[string][]byte{path: src})
			failed++
			continue
		}
		if changed {
			unformatted = append(unformatted, path)
			fmt.Fprintln(env.Stdout, path)
		}
	}
	switch {
	case failed > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d file(s) could not be formatted", failed, len(pos))}
	case *check && len(unformatted) > 0:
		return &exitError{code: 1, msg: fmt.Sprintf("%d file(s) not in canonical form; run: strata fmt %s", len(unformatted), strings.Join(unformatted, " "))}
	}
	return nil
}

// fmtFile formats one file in place (unless check) and reports whether
// its layout changed (or would).
func fmtFile(path string, check bool) (bool, error) {
	real, err := filepath.EvalSymlinks(path) // rewrite the file, not the link
	if err != nil {
		return false, err
	}
	info, err := os.Stat(real)
	if err != nil {
		return false, err
	}
	if info.IsDir() {
		return false, fmt.Errorf("%s is a directory; give job files", path)
	}
	src, err := readSource(real)
	if err != nil {
		return false, err
	}
	out, err := spec.FormatSource(path, src)
	if err != nil {
		return false, err
	}
	if bytes.Equal(src, out) {
		return false, nil
	}
	if check {
		return true, nil
	}
	if err := fsutil.WriteFileSync(real, out, info.Mode().Perm()); err != nil {
		return false, fmt.Errorf("rewriting %s: %w", path, err)
	}
	return true, nil
}

func runJobInit(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job init")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path := "example.hcl"
	switch len(pos) {
	case 0:
	case 1:
		path = pos[0]
	default:
		return usageError("job init takes at most one file name (default example.hcl)")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, iofs.ErrExist) {
		return &exitError{code: 1, msg: fmt.Sprintf("%s already exists; remove it or name another file: strata job init FILE", path)}
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(exampleJob); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Example job written to %s. Next:\n  strata validate %s\n  strata run %s\n", path, path, path)
	return nil
}

// exampleJob is what `strata job init` writes: valid, in canonical
// layout (both are tested), and commented for someone who knows Nomad.
const exampleJob = `# An example Strata job. Validate it with:  strata validate example.hcl
# Every block and default: strata inspect example.hcl

# Variables take their default, a -var-file, or -var NAME=VALUE on
# strata run, validate and inspect.
variable "replicas" {
  type        = number
  default     = 2
  description = "how many copies of the web group to run"
}

job "example" {
  # service (long-running, the default), batch (runs to completion) or
  # system (one copy on every eligible node).
  type        = "service"
  datacenters = ["dc1"]

  # Run only on Linux nodes. ${...} references are resolved per node.
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  # Replace one allocation at a time, each healthy for 10s before the next.
  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  # A group is the unit of placement: its tasks run together on one node.
  group "web" {
    count = var.replicas

    # Nodes behind flaky links: keep running for up to 6h while away.
    # disconnect {
    #   lost_after = "6h"
    # }

    task "hello" {
      # wasm runs a WebAssembly module with wazero; docker runs a container.
      driver = "wasm"

      config {
        # Push it first: strata module push hello.wasm -name hello -version 0.1.0
        module = "hello@0.1.0"
        # http: a fresh instance per request (CGI style) on the task's first
        # port; listener: the module serves the port itself; command: runs
        # to completion.
        mode = "http"
      }

      # Resolved by the agent when the task starts.
      env {
        GREETING = "hello"
        PORT     = "${STRATA_PORT_http}"
      }

      # Restart in place up to 2 times in 30m, 15s apart, then fail.
      restart {
        attempts = 2
        interval = "30m"
        delay    = "15s"
        mode     = "fail"
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
        network {
          port "http" {} # a dynamic port; static = 8080 pins one
        }
      }

      # Registered as example-web-hello.service.strata, healthy instances only.
      service {
        port = "http"
        tags = ["example"]
        check {
          type     = "http"
          path     = "/"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
  }
}
`
