package acl

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ACL is what one token may do: its policies compiled (Compile), or
// everything (Management). The zero value and nil allow nothing. An ACL
// is immutable, so one value may serve many requests at once.
type ACL struct {
	management bool
	token      bool // a real token's (Compile, Management), not the anonymous one's
	exact      map[string]capSet
	globs      []glob
	node       string
	agent      string
	operator   string
}

// capSet is a namespace's capabilities.
type capSet map[string]bool

func (c capSet) add(caps []string) {
	for _, k := range caps {
		c[k] = true
	}
}

type glob struct {
	pattern string
	caps    capSet
}

// Management is the ACL of a management token: everything is allowed.
func Management() *ACL { return &ACL{management: true, token: true} }

// Compile merges the policies of one token as Nomad does: a namespace's
// capabilities are the union of every rule for it (its policy's
// expansion and its capabilities), and deny anywhere denies everything in
// it; a node, agent or operator rule takes the highest level granted,
// unless one policy denies it.
func Compile(policies ...*Policy) *ACL {
	a := compile(policies)
	a.token = true
	return a
}

// Anonymous is the ACL of a request without a token: what policies grant
// (Nomad's "anonymous" policy; none: nothing), but never ScopeToken.
func Anonymous(policies ...*Policy) *ACL { return compile(policies) }

func compile(policies []*Policy) *ACL {
	a := &ACL{exact: map[string]capSet{}}
	byGlob := map[string]capSet{}
	for _, p := range policies {
		if p == nil {
			continue
		}
		for _, r := range p.Namespaces {
			set := a.exact
			if strings.Contains(r.Name, "*") {
				set = byGlob
			}
			caps := set[r.Name]
			if caps == nil {
				caps = capSet{}
				set[r.Name] = caps
			}
			caps.add(expand(r.Policy))
			caps.add(r.Capabilities)
		}
		a.node = maxPrivilege(a.node, p.Node)
		a.agent = maxPrivilege(a.agent, p.Agent)
		a.operator = maxPrivilege(a.operator, p.Operator)
	}
	for _, pat := range slices.Sorted(maps.Keys(byGlob)) {
		a.globs = append(a.globs, glob{pattern: pat, caps: byGlob[pat]})
	}
	return a
}

// maxPrivilege merges two levels: deny wins, then write, then read.
func maxPrivilege(a, b string) string {
	switch {
	case a == PolicyDeny || b == PolicyDeny:
		return PolicyDeny
	case a == PolicyWrite || b == PolicyWrite:
		return PolicyWrite
	case a == PolicyRead || b == PolicyRead:
		return PolicyRead
	}
	return ""
}

// IsManagement reports whether a is a management token's ACL.
func (a *ACL) IsManagement() bool { return a != nil && a.management }

// AllowNamespace reports whether a grants capability in namespace ns: the
// rule whose name is ns, else the glob that matches ns most closely (the
// fewest characters matched by its '*'), as Nomad picks it. Deny in that
// rule denies every capability.
func (a *ACL) AllowNamespace(ns, capability string) bool {
	if a == nil {
		return false
	}
	if a.management {
		return true
	}
	caps := a.namespaceCaps(ns)
	return caps != nil && !caps[CapDeny] && caps[capability]
}

func (a *ACL) namespaceCaps(ns string) capSet {
	if caps, ok := a.exact[ns]; ok {
		return caps
	}
	var best capSet
	bestDiff := -1
	for _, g := range a.globs {
		if !globMatch(g.pattern, ns) {
			continue
		}
		diff := len(ns) - len(strings.ReplaceAll(g.pattern, "*", ""))
		if bestDiff < 0 || diff < bestDiff {
			best, bestDiff = g.caps, diff
		}
	}
	return best
}

// globMatch reports whether s matches pattern, where '*' matches any run
// of characters (none included).
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// allowLevel reports whether a rule at level have grants want (read or write).
func allowLevel(have, want string) bool {
	switch have {
	case PolicyWrite:
		return want == PolicyRead || want == PolicyWrite
	case PolicyRead:
		return want == PolicyRead
	}
	return false
}

// AllowNode reports whether a grants level (PolicyRead or PolicyWrite) on nodes.
func (a *ACL) AllowNode(level string) bool {
	return a != nil && (a.management || allowLevel(a.node, level))
}

// AllowAgent reports whether a grants level on agents (join tokens, the
// servers' own agent information).
func (a *ACL) AllowAgent(level string) bool {
	return a != nil && (a.management || allowLevel(a.agent, level))
}

// AllowOperator reports whether a grants level on the cluster's operation
// (Raft peers, heartbeat statistics).
func (a *ACL) AllowOperator(level string) bool {
	return a != nil && (a.management || allowLevel(a.operator, level))
}

// Scope is what kind of permission an operation needs.
type Scope uint8

// Scopes.
const (
	// ScopeOpen: anyone, no token needed (the leader's address, bootstrap).
	ScopeOpen Scope = iota
	// ScopeToken: any valid token, whatever its policies (reading itself).
	ScopeToken
	// ScopeNamespace: a capability in the default namespace.
	ScopeNamespace
	// ScopeNode, ScopeAgent, ScopeOperator: a rule of that name at a level.
	ScopeNode
	ScopeAgent
	ScopeOperator
	// ScopeManagement: a management token (ACL policies and tokens).
	ScopeManagement
)

// Need is what an operation needs; the HTTP API's route table gives one
// to every route.
type Need struct {
	Scope Scope
	// What is the capability for ScopeNamespace, the level
	// (PolicyRead, PolicyWrite) for ScopeNode, ScopeAgent and ScopeOperator; empty otherwise.
	What string
	// Or is a second capability that grants the operation as well
	// (ScopeNamespace only; "" for none): scaling takes scale-job or
	// submit-job, as in Nomad.
	Or string
}

// Needs.
var (
	NeedOpen       = Need{Scope: ScopeOpen}
	NeedToken      = Need{Scope: ScopeToken}
	NeedManagement = Need{Scope: ScopeManagement}
)

// NeedNamespace needs capability in the default namespace.
func NeedNamespace(capability string) Need { return Need{Scope: ScopeNamespace, What: capability} }

// NeedNamespaceEither needs one of two capabilities in the default namespace.
func NeedNamespaceEither(capability, or string) Need {
	return Need{Scope: ScopeNamespace, What: capability, Or: or}
}

// NeedNode, NeedAgent and NeedOperator need their rule at level.
func NeedNode(level string) Need     { return Need{Scope: ScopeNode, What: level} }
func NeedAgent(level string) Need    { return Need{Scope: ScopeAgent, What: level} }
func NeedOperator(level string) Need { return Need{Scope: ScopeOperator, What: level} }

// Allows reports whether a grants n.
func (a *ACL) Allows(n Need) bool {
	switch n.Scope {
	case ScopeOpen:
		return true
	case ScopeToken:
		return a != nil && a.token
	case ScopeNamespace:
		return a.AllowNamespace(DefaultNamespace, n.What) || (n.Or != "" && a.AllowNamespace(DefaultNamespace, n.Or))
	case ScopeNode:
		return a.AllowNode(n.What)
	case ScopeAgent:
		return a.AllowAgent(n.What)
	case ScopeOperator:
		return a.AllowOperator(n.What)
	case ScopeManagement:
		return a.IsManagement()
	}
	return false
}

// String says what n is in a policy's words, for a denial's message.
func (n Need) String() string {
	switch n.Scope {
	case ScopeOpen:
		return "nothing"
	case ScopeToken:
		return "a valid ACL token"
	case ScopeNamespace:
		policy := PolicyWrite
		if slices.Contains(expand(PolicyRead), n.What) {
			policy = PolicyRead
		}
		if n.Or != "" {
			return fmt.Sprintf("capability %q or %q in namespace %q (namespace policy %q grants them)", n.What, n.Or, DefaultNamespace, policy)
		}
		return fmt.Sprintf("capability %q in namespace %q (namespace policy %q grants it)", n.What, DefaultNamespace, policy)
	case ScopeNode:
		return fmt.Sprintf("node:%s (a node { policy = %q } rule)", n.What, n.What)
	case ScopeAgent:
		return fmt.Sprintf("agent:%s (an agent { policy = %q } rule)", n.What, n.What)
	case ScopeOperator:
		return fmt.Sprintf("operator:%s (an operator { policy = %q } rule)", n.What, n.What)
	case ScopeManagement:
		return "a management token"
	}
	return "an unknown permission"
}
