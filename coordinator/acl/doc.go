// Package acl owns Strata's access control rules: ACL policies in Nomad's
// HCL form (Parse, with the job language's diagnostics: file:line:col, the
// source line and a caret), their compilation into what one token may do
// (Compile, Management, Anonymous → *ACL), and what an operation needs
// (Need: open, any token, a namespace capability, node / agent / operator
// read or write, management) with the check between the two (ACL.Allows).
//
// A policy:
//
//	namespace "default" {                 a name or a glob ("*", "prod-*")
//	  policy       = "read"               deny | read | write
//	  capabilities = ["read-logs"]        deny, list-jobs, read-job, submit-job, read-logs,
//	}                                     alloc-lifecycle, scale-job
//	node     { policy = "read" }          deny | read | write
//	agent    { policy = "write" }
//	operator { policy = "read" }
//
// "read" is list-jobs and read-job, "write" adds submit-job, read-logs,
// alloc-lifecycle and scale-job (Nomad's expansions, cut to what Strata
// has). A Need may accept either of two capabilities (scaling: scale-job
// or submit-job, as in Nomad). Merging a token's
// policies: capabilities add up per namespace and deny in any rule wins;
// node, agent and operator take the highest level unless one denies. A
// namespace's rule is the one with its exact name, else the glob matching
// it most closely. Nomad's rules that guard nothing in Strata (quota,
// plugin, node_pool, host_volume, variables, the "scale" policy,
// capabilities such as dispatch-job) are refused with a message, never
// accepted and ignored.
//
// It must not do I/O, read clocks or know about tokens' storage, HTTP or
// Raft: the coordinator stores policies and tokens (coordinator/state),
// resolves a request's token to an *ACL and checks the route's Need.
package acl
