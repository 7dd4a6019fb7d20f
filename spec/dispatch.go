package spec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// Parameterized jobs.
//
// A job with a parameterized block is a template: the servers never place
// it themselves; `strata job dispatch` launches a child from it, with
// meta and a payload. A child is a copy of its parent with its own ID
// (<parent>/dispatch-<unix>-<8 hex>), ParentID naming the parent, the
// dispatch meta over the parent's, the payload, and no parameterized
// block. A task's dispatch_payload block writes the payload into its
// /local directory.

// Parameterized payload rules.
const (
	PayloadOptional  = "optional"
	PayloadRequired  = "required"
	PayloadForbidden = "forbidden"
)

// MaxPayloadSize bounds a dispatched job's payload (Nomad's limit).
const MaxPayloadSize = 16 << 10

// Parameterized makes the job a template launched by dispatch.
type Parameterized struct {
	Payload      string   `json:"Payload"` // optional (default), required, forbidden
	MetaRequired []string `json:"MetaRequired,omitempty"`
	MetaOptional []string `json:"MetaOptional,omitempty"`
}

// DispatchPayload writes a dispatched job's payload into the task's local
// directory (/local, NOMAD_TASK_DIR) as File.
type DispatchPayload struct {
	File string `json:"File"`
}

// DispatchChildID is the ID of a dispatched child: the time and 8 hex
// digits the dispatcher chose.
func DispatchChildID(parent string, at time.Time, suffix string) string {
	return fmt.Sprintf("%s/dispatch-%d-%s", parent, at.Unix(), suffix)
}

// DispatchChild returns the child of the parameterized job j with the
// given ID, meta and payload (checked by CheckDispatch).
func (j *Job) DispatchChild(id string, meta map[string]string, payload []byte) (*Job, error) {
	c, err := copyJob(j)
	if err != nil {
		return nil, err
	}
	c.ID, c.ParentID, c.Parameterized = id, j.ID, nil
	if len(meta) > 0 {
		m := make(map[string]string, len(c.Meta)+len(meta))
		maps.Copy(m, c.Meta)
		maps.Copy(m, meta)
		c.Meta = m
	}
	if len(payload) > 0 {
		c.Payload = slices.Clone(payload)
	}
	return c, nil
}

// CheckDispatch checks a dispatch of the parameterized job j: the meta
// keys it requires are given, no other than it allows, and the payload as
// it says.
func (j *Job) CheckDispatch(meta map[string]string, payload []byte) error {
	p := j.Parameterized
	if p == nil {
		return fmt.Errorf("job %q is not parameterized: only a job with a parameterized block can be dispatched", j.ID)
	}
	var missing, unknown []string
	for _, k := range p.MetaRequired {
		if _, ok := meta[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range meta {
		if !slices.Contains(p.MetaRequired, k) && !slices.Contains(p.MetaOptional, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	switch {
	case len(missing) > 0:
		return fmt.Errorf("job %q requires meta %s (dispatch -meta KEY=VALUE)", j.ID, strings.Join(missing, ", "))
	case len(unknown) > 0:
		return fmt.Errorf("job %q does not take meta %s (meta_required: %v, meta_optional: %v)", j.ID, strings.Join(unknown, ", "), p.MetaRequired, p.MetaOptional)
	case p.Payload == PayloadRequired && len(payload) == 0:
		return fmt.Errorf("job %q requires a payload (dispatch JOB FILE, or - for stdin)", j.ID)
	case p.Payload == PayloadForbidden && len(payload) > 0:
		return fmt.Errorf("job %q forbids a payload", j.ID)
	case len(payload) > MaxPayloadSize:
		return fmt.Errorf("the payload is %d bytes; the limit is %d", len(payload), MaxPayloadSize)
	}
	return nil
}

// parameterized checks the parameterized block and the payload files.
func (v *validator) parameterized(j *Job) {
	root := rootLoc()
	if p := j.Parameterized; p != nil {
		pl := root.single("parameterized")
		if j.Type != JobTypeBatch {
			v.add(pl, "Parameterized not allowed", "a parameterized job launches batch jobs: set type = \"batch\" (a %s job runs until stopped)", j.Type)
		}
		if j.Periodic != nil {
			v.add(pl, "Periodic and parameterized", "a job is periodic or parameterized, not both")
		}
		switch p.Payload {
		case PayloadOptional, PayloadRequired, PayloadForbidden:
		default:
			v.add(pl.attr("payload"), "Invalid payload", "unknown payload %q; supported: %s, %s, %s", p.Payload, PayloadOptional, PayloadRequired, PayloadForbidden)
		}
		seen := map[string]bool{}
		for _, l := range []struct {
			name string
			keys []string
		}{{"meta_required", p.MetaRequired}, {"meta_optional", p.MetaOptional}} {
			for i, k := range l.keys {
				if k == "" {
					v.add(pl.attr(l.name).elem(i), "Invalid meta key", "meta keys must not be empty")
				} else if seen[k] {
					v.add(pl.attr(l.name).elem(i), "Duplicate meta key", "meta key %q is listed twice in meta_required and meta_optional", k)
				}
				seen[k] = true
			}
		}
	}
	if len(j.Payload) > MaxPayloadSize {
		v.add(root, "Payload too large", "the payload is %d bytes; the limit is %d", len(j.Payload), MaxPayloadSize)
	}
	if len(j.Payload) > 0 && j.ParentID == "" {
		v.add(root, "Payload not allowed", "only a dispatched job carries a payload (strata job dispatch)")
	}
	for gi, g := range j.Groups {
		if g == nil {
			continue
		}
		for ti, t := range g.Tasks {
			if t == nil || t.DispatchPayload == nil {
				continue
			}
			dl := root.block("group", gi, g.Name).block("task", ti, t.Name).single("dispatch_payload")
			f := t.DispatchPayload.File
			switch {
			case j.Parameterized == nil && j.ParentID == "":
				v.add(dl, "Dispatch payload not allowed", "dispatch_payload writes a dispatched job's payload: the job needs a parameterized block")
			case f == "":
				v.add(dl.attr("file"), "Missing file", `dispatch_payload needs file = "name", written in the task's /local directory`)
			case path.IsAbs(f) || slices.Contains(strings.Split(f, "/"), "..") || strings.ContainsRune(f, 0):
				v.add(dl.attr("file"), "Invalid file", "file %q must be a relative path inside the task's /local directory, without \"..\"", f)
			}
		}
	}
}
