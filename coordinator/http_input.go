package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The HTTP API's input limits (README, "Input limits"). Every JSON body
// goes through decodeJSON; every query parameter with a range through
// the parsers below; each refusal is a 4xx naming the field.
const (
	// maxSmallBody bounds a JSON request that is not a job or a policy.
	maxSmallBody = 64 << 10
	// maxBlockingWait caps ?wait= as Consul does; defaultBlockingWait is
	// the wait when ?index= is given without it.
	maxBlockingWait     = 10 * time.Minute
	defaultBlockingWait = 5 * time.Minute
	// minJoinTokenTTL, maxJoinTokenTTL bound an agent join token's TTL.
	minJoinTokenTTL = time.Minute
	maxJoinTokenTTL = 365 * 24 * time.Hour
	// maxDrainDeadline bounds a drain's deadline.
	maxDrainDeadline = 30 * 24 * time.Hour
)

// tooLarge refuses a body over its limit: 413, naming the limit.
type tooLarge struct {
	what  string
	limit int64
}

func (e tooLarge) Error() string {
	return fmt.Sprintf("%s is larger than the limit of %s", e.what, sizeString(e.limit))
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// errEmptyBody: a route that needs a JSON body got none.
var errEmptyBody = errors.New("the request has no body: want a JSON object")

// decodeJSON reads r's body (at most limit bytes: tooLarge past it) and
// decodes it into v strictly: a field v does not have is refused by name
// (Strata never accepts what it does not honour), as is a value of the
// wrong type (named by its field), and anything after the object. An
// empty body leaves v as it is when optional, and is refused otherwise.
func decodeJSON(r *http.Request, limit int64, what string, v any, optional bool) error {
	if r.ContentLength > limit {
		return tooLarge{what: what, limit: limit}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return badRequest{fmt.Errorf("reading %s: %w", what, err)}
	}
	if int64(len(body)) > limit {
		return tooLarge{what: what, limit: limit}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest{fmt.Errorf("%s: %w", what, errEmptyBody)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badRequest{fmt.Errorf("malformed %s: field %s: want a JSON %s, got %s", what, te.Field, jsonKind(te.Type.Kind().String()), te.Value)}
		}
		return badRequest{fmt.Errorf("malformed %s: %w", what, err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest{fmt.Errorf("malformed %s: data after the JSON object", what)}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	}
	return "object"
}

// queryBool parses a boolean query parameter: absent is def, present
// without a value (?stale) is true.
func queryBool(r *http.Request, name string, def bool) (bool, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return def, nil
	}
	v := q.Get(name)
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest{fmt.Errorf("query parameter %s=%q: want true or false", name, v)}
	}
	return b, nil
}

// blockingParams parses ?index= and ?wait= of a blocking query: index a
// non-negative integer, wait a duration from 1ms to maxBlockingWait
// (Consul's cap); wait without index is refused, as it would wait for
// nothing.
func blockingParams(r *http.Request) (index uint64, wait time.Duration, err error) {
	q := r.URL.Query()
	if q.Has("index") {
		v := q.Get("index")
		if index, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, badRequest{fmt.Errorf("query parameter index=%q: want a non-negative integer (an X-Strata-Index value)", v)}
		}
	}
	wait = defaultBlockingWait
	if q.Has("wait") {
		v := q.Get("wait")
		d, perr := time.ParseDuration(v)
		if perr != nil {
			// Consul also takes a bare number of seconds.
			if n, nerr := strconv.ParseUint(v, 10, 32); nerr == nil {
				d, perr = time.Duration(n)*time.Second, nil
			}
		}
		switch {
		case perr != nil:
			return 0, 0, badRequest{fmt.Errorf("query parameter wait=%q: want a duration like \"30s\"", v)}
		case d <= 0 || d > maxBlockingWait:
			return 0, 0, badRequest{fmt.Errorf("query parameter wait=%s: must be more than 0 and at most %s", d, maxBlockingWait)}
		}
		wait = d
	}
	return index, wait, nil
}

// checkQuery refuses, on every route, a malformed value of the query
// parameters any route may take: the blocking query's index and wait,
// the read modes stale and consistent (both at once is refused too).
// Parameters a route alone takes (tail, purge, ...) its handler checks.
func checkQuery(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := blockingParams(r); err != nil {
			writeError(w, err)
			return
		}
		stale, err := queryBool(r, "stale", false)
		if err != nil {
			writeError(w, err)
			return
		}
		consistent, err := queryBool(r, "consistent", false)
		if err != nil {
			writeError(w, err)
			return
		}
		if stale && consistent {
			writeError(w, badRequest{errors.New("query parameters stale and consistent: give one or the other")})
			return
		}
		h.ServeHTTP(w, r)
	})
}
