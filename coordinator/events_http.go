package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-run/strata/coordinator/acl"
	"github.com/strata-run/strata/coordinator/state"
)

// eventStream serves GET /v1/event/stream from the server's eventBuffer:
// newline-delimited JSON, one line per Raft index with events the
// subscriber asked for and may read, `{}` heartbeats, and a final
// {"Error":…} line when the subscription ends on the server's side.
// Each subscription is the request's own goroutine, ended when the client
// goes away or a write stalls.
type eventStream struct {
	buf  *eventBuffer
	acls *aclResolver
	// heartbeat is how often an idle stream sends `{}`, and how often
	// the subscriber's token is checked again.
	heartbeat time.Duration
	// writeTimeout bounds one line's write: a client that does not read
	// is dropped instead of holding its goroutine.
	writeTimeout time.Duration
}

const (
	defaultEventHeartbeat = 10 * time.Second
	eventWriteTimeout     = 30 * time.Second
	eventBatchEntries     = 256 // entries read from the buffer at a time
)

// eventTopics are the topics a subscriber may name.
var eventTopics = []string{state.TopicJob, state.TopicAllocation, state.TopicDeployment, state.TopicNode}

// eventFilter is what a subscriber asked for: topic → keys ("*": all).
type eventFilter map[string][]string

// parseEventQuery reads the topics (topic=Job, topic=Job:web, topic=*;
// none: all) and the index to resume after.
func parseEventQuery(q map[string][]string) (eventFilter, uint64, bool, error) {
	f := eventFilter{}
	for _, t := range q["topic"] {
		topic, key, ok := strings.Cut(t, ":")
		if !ok || key == "" {
			key = "*"
		}
		switch {
		case topic == "*":
			for _, name := range eventTopics {
				f[name] = append(f[name], key)
			}
		case containsStr(eventTopics, topic):
			f[topic] = append(f[topic], key)
		default:
			return nil, 0, false, fmt.Errorf("topic %q: not a topic (the topics are %s, or *; a key after a colon: Job:web)", t, strings.Join(eventTopics, ", "))
		}
	}
	if len(f) == 0 {
		for _, name := range eventTopics {
			f[name] = []string{"*"}
		}
	}
	if ns := q["namespace"]; len(ns) > 0 && ns[0] != acl.DefaultNamespace && ns[0] != "*" {
		return nil, 0, false, fmt.Errorf("namespace %q: strata has the %q namespace only", ns[0], acl.DefaultNamespace)
	}
	idx, has := q["index"]
	if !has || idx[0] == "" {
		return f, 0, false, nil
	}
	from, err := strconv.ParseUint(idx[0], 10, 64)
	if err != nil {
		return nil, 0, false, fmt.Errorf("index %q: not a Raft index", idx[0])
	}
	return f, from, true, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// match reports whether the filter wants e, and the ACL lets its reader
// see it: jobs, allocations and deployments need read-job in the default
// namespace, nodes node read.
func (f eventFilter) match(e *state.Event, a *acl.ACL) bool {
	keys, ok := f[e.Topic]
	if !ok {
		return false
	}
	if e.Topic == state.TopicNode {
		if !a.AllowNode(acl.PolicyRead) {
			return false
		}
	} else if !a.AllowNamespace(acl.DefaultNamespace, acl.CapReadJob) {
		return false
	}
	for _, k := range keys {
		if k == "*" || k == e.Key || (e.Topic != state.TopicNode && k == e.JobID()) {
			return true
		}
	}
	return false
}

// eventLine is one line of the stream.
type eventLine struct {
	Index  uint64        `json:"Index"`
	Events []state.Event `json:"Events"`
}

func (s *eventStream) serve(w http.ResponseWriter, r *http.Request) {
	filter, from, resume, err := parseEventQuery(r.URL.Query())
	if err != nil {
		writeError(w, badRequest{fmt.Errorf("event stream: %w", err)})
		return
	}
	a, _ := aclFrom(r.Context())
	secret := secretOf(r.Header)
	if !resume {
		from = s.buf.position()
	}
	// A resume the buffer cannot serve is refused before the stream starts.
	if err := s.buf.check(from); err != nil {
		writeError(w, badRequest{err})
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(v any) bool {
		rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		return enc.Encode(v) == nil && rc.Flush() == nil
	}
	if !send(struct{}{}) { // the client knows at once it is subscribed
		return
	}
	beat := time.NewTicker(s.heartbeat)
	defer beat.Stop()
	for range maxEventLoops {
		entries, to, wake, err := s.buf.after(from, eventBatchEntries)
		if err != nil {
			// The subscriber fell behind what the buffer keeps (or a
			// snapshot replaced the state): say so, and end.
			send(map[string]string{"Error": err.Error()})
			return
		}
		for _, en := range entries {
			line := eventLine{Index: en.Index}
			for i := range en.Events {
				if filter.match(&en.Events[i], a) {
					line.Events = append(line.Events, en.Events[i])
				}
			}
			if len(line.Events) > 0 && !send(line) {
				return
			}
		}
		from = to
		if len(entries) == eventBatchEntries {
			continue // more are waiting
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-beat.C:
			// Check the token again: a deleted or expired one ends the stream.
			if a, err = s.reresolve(r.Context(), secret); err != nil {
				send(map[string]string{"Error": fmt.Sprintf("event stream: %v", err)})
				return
			}
			if !send(struct{}{}) {
				return
			}
		}
	}
	send(map[string]string{"Error": "event stream: the subscription reached its length limit; resume from its last index"})
}

// maxEventLoops bounds one subscription's loop (each wake-up by a commit
// or a heartbeat is one): past it, a client resumes from its last index.
const maxEventLoops = 1 << 24

func (s *eventStream) reresolve(ctx context.Context, secret string) (*acl.ACL, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, _, err := s.acls.resolve(secret)
	if errors.Is(err, ErrACLTokenNotFound) || errors.Is(err, ErrACLTokenExpired) {
		return nil, fmt.Errorf("the subscription's ACL token is no longer valid: %w", err)
	}
	return a, err
}
