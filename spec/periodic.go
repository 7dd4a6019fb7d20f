package spec

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/cronexpr"
)

// Periodic jobs.
//
// A periodic job (periodic { cron = "..." }) is a template: the servers
// never place it themselves. The leader launches a child job from it at
// each tick of its cron expressions. A child is a copy of its parent with
// its own ID (<parent>/periodic-<unix seconds of the tick>), ParentID
// naming the parent, and no periodic block.

// Periodic launches a child job at every tick of Cron and Crons.
type Periodic struct {
	// Cron and Crons are cron expressions (github.com/hashicorp/cronexpr,
	// as Nomad's): five fields from minutes, six with years, or seven
	// from seconds to years. A job ticks at the union of all of them.
	Cron  string   `json:"Cron,omitempty"`
	Crons []string `json:"Crons,omitempty"`
	// ProhibitOverlap skips a tick while a child launched before is
	// still running.
	ProhibitOverlap bool `json:"ProhibitOverlap,omitempty"`
	// TimeZone is the IANA zone the expressions are read in; default UTC.
	TimeZone string `json:"TimeZone,omitempty"`
	// Enabled: false stops the launches (the job stays registered).
	Enabled *bool `json:"Enabled,omitempty"`
}

// IsTemplate reports whether the job is launched as children rather than
// placed itself.
func (j *Job) IsTemplate() bool { return j != nil && (j.Periodic != nil || j.Parameterized != nil) }

// On reports whether a periodic job launches children.
func (p *Periodic) On() bool { return p != nil && (p.Enabled == nil || *p.Enabled) }

// Schedule is a periodic job's parsed expressions in its zone.
type Schedule struct {
	exprs []*cronexpr.Expression
	loc   *time.Location
}

// Schedule parses the cron expressions and zone of p.
func (p *Periodic) Schedule() (*Schedule, error) {
	s := &Schedule{loc: time.UTC}
	for _, c := range p.all() {
		e, err := cronexpr.Parse(c)
		if err != nil {
			return nil, fmt.Errorf("cron %q: %v", c, err)
		}
		s.exprs = append(s.exprs, e)
	}
	if len(s.exprs) == 0 {
		return nil, fmt.Errorf("periodic has no cron expression")
	}
	if p.TimeZone != "" {
		loc, err := time.LoadLocation(p.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("time_zone %q: %v", p.TimeZone, err)
		}
		s.loc = loc
	}
	return s, nil
}

func (p *Periodic) all() []string {
	var all []string
	if p.Cron != "" {
		all = append(all, p.Cron)
	}
	return append(all, p.Crons...)
}

// Next is the first tick strictly after t, in UTC (zero if there is
// none).
func (s *Schedule) Next(t time.Time) time.Time {
	var best time.Time
	for _, e := range s.exprs {
		n := e.Next(t.In(s.loc))
		if !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	if best.IsZero() {
		return best
	}
	return best.UTC()
}

// PeriodicChildID is the ID of the child a periodic job launches at tick.
func PeriodicChildID(parent string, tick time.Time) string {
	return fmt.Sprintf("%s/periodic-%d", parent, tick.Unix())
}

// PeriodicChild returns the child job of j launched at tick: a copy with
// its own ID, ParentID set and no periodic block.
func (j *Job) PeriodicChild(tick time.Time) (*Job, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var c *Job
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	c.ID = PeriodicChildID(j.ID, tick)
	c.ParentID = j.ID
	c.Periodic = nil
	return c, nil
}

// copyJob is a deep copy of j through its JSON form (the stored one).
func copyJob(j *Job) (*Job, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var c *Job
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return c, nil
}

// periodic checks the periodic block and a child's ID.
func (v *validator) periodic(j *Job) {
	root := rootLoc()
	if p := j.Periodic; p != nil {
		pl := root.single("periodic")
		if j.Type != JobTypeBatch {
			v.add(pl, "Periodic not allowed", "a periodic job launches batch jobs: set type = \"batch\" (a %s job runs until stopped)", j.Type)
		}
		switch {
		case p.Cron == "" && len(p.Crons) == 0:
			v.add(pl, "Missing cron", `periodic needs cron = "..." or crons = [...] (like "*/15 * * * *")`)
		case p.Cron != "" && len(p.Crons) > 0:
			v.add(pl.attr("crons"), "Conflicting cron", `periodic takes cron = "..." or crons = [...], not both`)
		}
		if p.Cron != "" {
			if _, err := cronexpr.Parse(p.Cron); err != nil {
				v.add(pl.attr("cron"), "Invalid cron", "cron %q: %v", p.Cron, err)
			}
		}
		for i, c := range p.Crons {
			if _, err := cronexpr.Parse(c); err != nil {
				v.add(pl.attr("crons").elem(i), "Invalid cron", "cron %q: %v", c, err)
			}
		}
		if p.TimeZone != "" {
			if _, err := time.LoadLocation(p.TimeZone); err != nil {
				v.add(pl.attr("time_zone"), "Invalid time_zone", "time_zone %q is not an IANA time zone (like \"Europe/Paris\" or \"UTC\")", p.TimeZone)
			}
		}
	}
	if j.ParentID != "" {
		if rest, ok := strings.CutPrefix(j.ID, j.ParentID+"/"); !ok || validName("job ID", j.ParentID) != nil || validName("child job ID", rest) != nil {
			v.add(root, "Invalid child job", "a child job's ID is its parent's, \"/\" and a name; got %q for parent %q", j.ID, j.ParentID)
		}
		if j.IsTemplate() {
			v.add(root, "Invalid child job", "a child job is neither periodic nor parameterized itself")
		}
	}
}
