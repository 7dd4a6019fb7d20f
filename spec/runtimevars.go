package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Runtime variables.
//
// The agent gives every task these variables, each under Nomad's name
// (NOMAD_<NAME>) and Strata's (STRATA_<NAME>); env values, args and the
// docker command may reference them, and Validate refuses any other name.
//
//	ALLOC_ID  ALLOC_NAME  ALLOC_INDEX  ALLOC_DIR  TASK_DIR
//	JOB_ID  JOB_NAME  GROUP_NAME  TASK_NAME
//	DC  REGION  CPU_LIMIT  MEMORY_LIMIT
//	PORT_<label>  ADDR_<label>  IP_<label>                (a port of the group)
//	HOST_PORT_<label>  HOST_IP_<label>  HOST_ADDR_<label>
//	ALLOC_PORT_<label>  ALLOC_IP_<label>  ALLOC_ADDR_<label>
//	META_<key>                                            (a key of the job's, group's or task's meta)

// RuntimeVarNames are the fixed runtime variable names, without their
// NOMAD_ or STRATA_ prefix.
var RuntimeVarNames = []string{
	"ALLOC_ID", "ALLOC_NAME", "ALLOC_INDEX", "ALLOC_DIR", "TASK_DIR",
	"JOB_ID", "JOB_NAME", "GROUP_NAME", "TASK_NAME",
	"DC", "REGION", "CPU_LIMIT", "MEMORY_LIMIT",
}

// RuntimePortPrefixes are the runtime variables that name a port label,
// without their NOMAD_ or STRATA_ prefix.
var RuntimePortPrefixes = []string{
	"PORT_", "ADDR_", "IP_", "HOST_PORT_", "HOST_IP_", "HOST_ADDR_", "ALLOC_PORT_", "ALLOC_IP_", "ALLOC_ADDR_",
}

// RuntimeMetaPrefix names a meta key: META_<key>.
const RuntimeMetaPrefix = "META_"

// runtimeVarPrefixes are the two spellings of every runtime variable.
var runtimeVarPrefixes = []string{"NOMAD_", "STRATA_"}

// runtimeVar splits a runtime variable reference into its name without
// prefix; ok is false when ref is not NOMAD_* or STRATA_*.
func runtimeVar(ref string) (name string, ok bool) {
	for _, p := range runtimeVarPrefixes {
		if n, ok := strings.CutPrefix(ref, p); ok {
			return n, true
		}
	}
	return "", false
}

// checkRuntimeVar says what is wrong with the runtime variable name (its
// prefix cut), or returns "".
func checkRuntimeVar(ref, name string) string {
	if slices.Contains(RuntimeVarNames, name) {
		return ""
	}
	for _, p := range RuntimePortPrefixes {
		if l, ok := strings.CutPrefix(name, p); ok && l != "" {
			return ""
		}
	}
	if k, ok := strings.CutPrefix(name, RuntimeMetaPrefix); ok && k != "" {
		return ""
	}
	return fmt.Sprintf("unknown runtime variable ${%s}; known: NOMAD_ or STRATA_ followed by %s, PORT_<label> (and ADDR_, IP_, HOST_PORT_, HOST_IP_, HOST_ADDR_, ALLOC_PORT_, ALLOC_IP_, ALLOC_ADDR_) or META_<key>",
		ref, strings.Join(RuntimeVarNames, ", "))
}

// portOfRef returns the port label a runtime variable names, if it names one.
func portOfRef(ref string) (string, bool) {
	name, ok := runtimeVar(ref)
	if !ok {
		return "", false
	}
	// The longest prefix first: HOST_PORT_x is port x, not an IP_ of "HOST_PORT_x".
	best := ""
	for _, p := range RuntimePortPrefixes {
		if strings.HasPrefix(name, p) && len(p) > len(best) && len(name) > len(p) {
			best = p
		}
	}
	if best == "" {
		return "", false
	}
	return name[len(best):], true
}

// metaOfRef returns the meta key a runtime variable names, if it names one.
func metaOfRef(ref string) (string, bool) {
	name, ok := runtimeVar(ref)
	if !ok {
		return "", false
	}
	k, ok := strings.CutPrefix(name, RuntimeMetaPrefix)
	return k, ok && k != ""
}

// MetaVars returns the NOMAD_META_<key> and STRATA_META_<key> variables of
// a task whose job, group and task meta are given (the task's wins, then
// the group's): each key as written and, as Nomad does, upper-cased.
func MetaVars(metas ...map[string]string) map[string]string {
	merged := map[string]string{}
	for _, m := range metas {
		for k, v := range m {
			merged[k] = v
		}
	}
	out := make(map[string]string, 4*len(merged))
	for k, v := range merged {
		for _, p := range runtimeVarPrefixes {
			out[p+RuntimeMetaPrefix+k] = v
			if u := strings.ToUpper(k); u != k {
				if _, set := merged[u]; !set {
					out[p+RuntimeMetaPrefix+u] = v
				}
			}
		}
	}
	return out
}
