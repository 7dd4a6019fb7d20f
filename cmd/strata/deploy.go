package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-run/strata/coordinator/api"
	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/spec"
)

// Exit codes of `strata plan`, Nomad's: 0 no allocation would be created
// or destroyed, 1 some would, 255 the plan failed.
const (
	planNoChange = 0
	planChanges  = 1
	planError    = 255
)

func runPlan(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "plan")
	addr := addressFlag(fs, env)
	vars := addVarFlags(fs)
	arg, err := parseOne(fs, args, "plan takes one job file")
	if err != nil {
		return err
	}
	job, err := vars.parseJob(env, arg)
	if err != nil {
		return &exitError{code: planError, msg: err.Error()}
	}
	r, err := client(*addr).PlanJob(ctx, job)
	if err != nil {
		return &exitError{code: planError, msg: fmt.Sprintf("planning job %q: %v", job.ID, err)}
	}
	changes := printPlan(env.Stdout, job, r)
	fmt.Fprintf(env.Stdout, "\nJob Modify Index: %d\n", r.JobModifyIndex)
	fmt.Fprintf(env.Stdout, "To submit the job with version verification run:\n\n    strata run -check-index %d %s\n\n", r.JobModifyIndex, arg)
	fmt.Fprintln(env.Stdout, "With -check-index, the job is only registered if its modify index is still the one given: if it changed, someone modified the job since this plan and its results may no longer hold.")
	if changes {
		return &exitError{code: planChanges}
	}
	return nil
}

// printPlan writes the diff and the scheduler's dry run; it reports
// whether allocations would be created or destroyed.
func printPlan(w io.Writer, job *spec.Job, r *structs.JobPlanResponse) bool {
	switch {
	case r.JobModifyIndex == 0:
		fmt.Fprintf(w, "+ Job: %q (new, version %d)\n", job.ID, r.NewVersion)
	case len(r.Diff) == 0:
		fmt.Fprintf(w, "Job: %q (unchanged, version %d)\n", job.ID, r.Version)
	default:
		fmt.Fprintf(w, "+/- Job: %q (version %d => %d)\n", job.ID, r.Version, r.NewVersion)
	}
	if r.JobModifyIndex != 0 {
		for _, d := range r.Diff {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	fmt.Fprintln(w, "\nScheduler dry-run:")
	changes := false
	for _, g := range sortedKeys(r.Groups) {
		s := r.Groups[g]
		var parts []string
		add := func(n int, what string) {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, what))
			}
		}
		add(s.Place-s.Canary-s.Replace, "create")
		add(s.Canary, "canary")
		add(s.Destructive, "create/destroy update")
		add(s.Stop, "destroy")
		add(s.InPlace, "in-place update")
		add(s.Ignore, "ignore")
		if len(parts) == 0 {
			parts = []string{"no change"}
		}
		if s.Place+s.Stop+s.Destructive > 0 {
			changes = true
		}
		fmt.Fprintf(w, "- Group %q: %s\n", g, strings.Join(parts, ", "))
	}
	if r.Deployment {
		fmt.Fprintln(w, "- The new version starts a deployment: replacements roll out as the update block says.")
	}
	if len(r.FailedTGAllocs) == 0 {
		fmt.Fprintln(w, "- All tasks successfully allocated.")
	}
	for _, g := range sortedKeys(r.FailedTGAllocs) {
		fmt.Fprintf(w, "- WARNING: Failed to place all allocations of group %q: %s\n", g, r.FailedTGAllocs[g])
	}
	return changes
}

func runJobHistory(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job history")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	diffs := fs.Bool("p", false, "show the changes of each version from the one before")
	arg, err := parseOne(fs, args, "job history takes one job ID")
	if err != nil {
		return err
	}
	r, err := client(*addr).JobVersions(ctx, arg, *diffs)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, r)
	}
	if !*diffs {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Version\tStable\tSubmitted\tModules")
		for _, v := range r.Versions {
			fmt.Fprintf(tw, "%d\t%t\t%s\t%s\n", v.Version, v.Stable, showTime(v.SubmitTime, env.location()), strings.Join(jobModules(v.Job), ", "))
		}
		return tw.Flush()
	}
	for i, v := range r.Versions {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		fmt.Fprintf(env.Stdout, "Version     = %d\nStable      = %t\nSubmit Date = %s\nModules     = %s\n",
			v.Version, v.Stable, showTime(v.SubmitTime, env.location()), strings.Join(jobModules(v.Job), ", "))
		if i < len(r.Diffs) && len(r.Diffs[i]) > 0 {
			fmt.Fprintf(env.Stdout, "Diff        =\n")
			for _, d := range r.Diffs[i] {
				fmt.Fprintf(env.Stdout, "  %s\n", d)
			}
		}
	}
	return nil
}

// jobModules lists the modules a job runs: name@version (short digest).
func jobModules(j *spec.Job) []string {
	if j == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, g := range j.Groups {
		for _, t := range g.Tasks {
			m := t.Config.Module
			if m == "" {
				m = t.Config.Image
			}
			if d := t.Config.ModuleDigest; d != "" && d != m {
				m += " (" + shortDigest(d) + ")"
			}
			if m != "" && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}

func runJobRevert(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "job revert")
	addr := addressFlag(fs, env)
	detach := fs.Bool("detach", false, "return as soon as the revert is registered")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to follow the deployment")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("job revert takes a job ID and a version")
	}
	version, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil {
		return usageError("job revert: version %q is not a number", pos[1])
	}
	c := client(*addr)
	resp, err := c.RevertJob(ctx, pos[0], version, nil)
	if err != nil {
		return fmt.Errorf("reverting job %q to version %d: %w", pos[0], version, err)
	}
	fmt.Fprintf(env.Stdout, "==> Job %q reverted to version %d's spec: now version %d, evaluation %s\n", pos[0], version, resp.Version, short(resp.EvalID))
	if *detach {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if resp.DeploymentID == "" {
		fmt.Fprintln(env.Stdout, "==> The reverted version starts no deployment: its allocations are moved in place")
		return nil
	}
	return followDeployment(ctx, env, c, pos[0], resp.DeploymentID, resp.Index)
}

// followDeployment follows a deployment with blocking queries until it
// ends: nil when successful (or when its canaries wait for a person to
// promote them), an error naming the deployment and why when it fails or
// is cancelled (a revert's own deployment is not followed: the failure is
// the answer).
func followDeployment(ctx context.Context, env *Env, c *api.Client, jobID, id string, index uint64) error {
	p := newProgress(env.Stdout)
	var d *structs.Deployment
	for {
		got, idx, err := c.Deployment(ctx, id, index, 30*time.Second)
		switch {
		case ctx.Err() != nil:
			p.done()
			return &exitError{code: 1, msg: fmt.Sprintf("timed out following deployment %s of job %q; it goes on: see `strata deployment status %s`", short(id), jobID, short(id))}
		case err != nil && !isNotFound(err):
			p.done()
			return err
		case err == nil:
			d = got
		}
		index = max(index, idx)
		if d == nil {
			continue // not on this server yet: the blocking query waits for the registration's index
		}
		p.show(d)
		switch {
		case d.Status == structs.DeploymentSuccessful:
			p.done()
			fmt.Fprintf(env.Stdout, "==> Deployment %s of job %q version %d: %s\n", short(d.ID), jobID, d.JobVersion, d.StatusDescription)
			return nil
		case d.Status == structs.DeploymentFailed, d.Status == structs.DeploymentCancelled:
			p.done()
			return &exitError{code: 1, msg: fmt.Sprintf("deployment %s of job %q version %d %s: %s", short(d.ID), jobID, d.JobVersion, d.Status, d.StatusDescription)}
		case needsPromotion(d):
			p.done()
			fmt.Fprintf(env.Stdout, "==> Deployment %s: its canaries are healthy and wait to be promoted: strata deployment promote %s\n", short(d.ID), short(d.ID))
			return nil
		}
	}
}

func needsPromotion(d *structs.Deployment) bool {
	for _, g := range d.Groups {
		if g.DesiredCanaries > 0 && !g.Promoted && !g.AutoPromote && g.HealthyCanaries >= g.DesiredCanaries {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// progress shows a deployment's groups: redrawn in place with a bar on a
// terminal, one plain line per change otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	drawn int    // lines drawn last time (terminal)
	last  string // last plain line
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(d *structs.Deployment) {
	if !p.tty {
		var parts []string
		for _, g := range sortedKeys(d.Groups) {
			s := d.Groups[g]
			part := fmt.Sprintf("%s %d/%d healthy, %d placed, %d unhealthy", g, s.HealthyAllocs, s.DesiredTotal, s.PlacedAllocs, s.UnhealthyAllocs)
			if s.DesiredCanaries > 0 {
				part += fmt.Sprintf(", canaries %d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
				if s.Promoted {
					part += " (promoted)"
				}
			}
			parts = append(parts, part)
		}
		line := fmt.Sprintf("    Deployment %s %s: %s", short(d.ID), d.Status, strings.Join(parts, "; "))
		if line != p.last {
			p.last = line
			fmt.Fprintln(p.w, line)
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	lines := []string{fmt.Sprintf("Deployment %s (version %d): %s — %s", short(d.ID), d.JobVersion, d.Status, d.StatusDescription),
		fmt.Sprintf("%-16s %7s %6s %7s %9s %8s  %s", "Group", "Desired", "Placed", "Healthy", "Unhealthy", "Canaries", "Progress")}
	for _, g := range sortedKeys(d.Groups) {
		s := d.Groups[g]
		canaries := "-"
		if s.DesiredCanaries > 0 {
			canaries = fmt.Sprintf("%d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
		}
		lines = append(lines, fmt.Sprintf("%-16s %7d %6d %7d %9d %8s  %s", g, s.DesiredTotal, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs, canaries, bar(s.HealthyAllocs, s.DesiredTotal, 20)))
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n")
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

func (p *progress) done() { p.drawn = 0 }

func bar(n, of, width int) string {
	if of <= 0 {
		return "[" + strings.Repeat("#", width) + "]"
	}
	fill := min(width, n*width/of)
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", fill), strings.Repeat(".", width-fill), n, of)
}

// resolveDeployment finds a deployment by its ID or a unique prefix.
func resolveDeployment(ctx context.Context, c *api.Client, ref string) (*structs.Deployment, error) {
	ds, err := c.Deployments(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch len(ds) {
	case 0:
		return nil, fmt.Errorf("no deployment with ID or prefix %q (see `strata deployment list`)", ref)
	case 1:
		return ds[0], nil
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return nil, fmt.Errorf("prefix %q matches %d deployments: %s", ref, len(ds), strings.Join(ids, ", "))
}

func runDeploymentList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "deployment list")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("deployment list takes no arguments")
	}
	ds, err := client(*addr).Deployments(ctx, "")
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, ds)
	}
	if len(ds) == 0 {
		fmt.Fprintln(env.Stdout, "No deployments.")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJob ID\tJob Version\tStatus\tDescription")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", short(d.ID), d.JobID, d.JobVersion, d.Status, d.StatusDescription)
	}
	return tw.Flush()
}

func runDeploymentStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "deployment status")
	addr := addressFlag(fs, env)
	out := addOutputFlags(fs)
	arg, err := parseOne(fs, args, "deployment status takes one deployment ID (or unique prefix)")
	if err != nil {
		return err
	}
	d, err := resolveDeployment(ctx, client(*addr), arg)
	if err != nil {
		return err
	}
	if out.raw() {
		return out.write(env.Stdout, d)
	}
	printDeployment(env, d)
	return nil
}

func printDeployment(env *Env, d *structs.Deployment) {
	fmt.Fprintf(env.Stdout, "ID          = %s\nJob ID      = %s\nJob Version = %d\nStatus      = %s\nDescription = %s\n",
		d.ID, d.JobID, d.JobVersion, d.Status, d.StatusDescription)
	if d.RevertOf != nil {
		fmt.Fprintf(env.Stdout, "Reverts     = version %d\n", *d.RevertOf)
	}
	fmt.Fprintln(env.Stdout, "\nDeployed")
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Task Group\tAuto Revert\tPromoted\tDesired\tCanaries\tPlaced\tHealthy\tUnhealthy\tProgress Deadline")
	for _, g := range sortedKeys(d.Groups) {
		s := d.Groups[g]
		deadline := "-"
		if s.RequireProgressBy > 0 {
			deadline = showTime(s.RequireProgressBy, env.location())
		}
		fmt.Fprintf(tw, "%s\t%t\t%t\t%d\t%d\t%d\t%d\t%d\t%s\n", g, s.AutoRevert, s.Promoted, s.DesiredTotal,
			s.DesiredCanaries, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs, deadline)
	}
	tw.Flush()
}

func runDeploymentPromote(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "deployment promote")
	addr := addressFlag(fs, env)
	var groups multiFlag
	fs.Var(&groups, "group", "promote this group's canaries (repeatable; default: every group)")
	arg, err := parseOne(fs, args, "deployment promote takes one deployment ID (or unique prefix)")
	if err != nil {
		return err
	}
	c := client(*addr)
	d, err := resolveDeployment(ctx, c, arg)
	if err != nil {
		return err
	}
	r, err := c.PromoteDeployment(ctx, d.ID, groups)
	if err != nil {
		return fmt.Errorf("promoting deployment %s: %w", short(d.ID), err)
	}
	fmt.Fprintf(env.Stdout, "==> Deployment %s promoted; evaluation %s rolls the rest out\n", short(d.ID), short(r.EvalID))
	return nil
}

func runDeploymentFail(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "deployment fail")
	addr := addressFlag(fs, env)
	arg, err := parseOne(fs, args, "deployment fail takes one deployment ID (or unique prefix)")
	if err != nil {
		return err
	}
	c := client(*addr)
	d, err := resolveDeployment(ctx, c, arg)
	if err != nil {
		return err
	}
	r, err := c.FailDeployment(ctx, d.ID)
	if err != nil {
		return fmt.Errorf("failing deployment %s: %w", short(d.ID), err)
	}
	msg := fmt.Sprintf("==> Deployment %s marked as failed", short(d.ID))
	if r.RevertedJobVersion != nil {
		msg += fmt.Sprintf("; job %q reverted to version %d", d.JobID, *r.RevertedJobVersion)
	}
	fmt.Fprintln(env.Stdout, msg)
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
