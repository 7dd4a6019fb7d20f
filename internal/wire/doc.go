// Package wire is the protocol between an edge agent and a coordinator
// server, spoken over one QUIC connection per agent.
//
// The agent dials out (so it works behind NAT) and opens streams; the server
// never dials the agent. Streams:
//
//   - the control stream, the first one the agent opens: Register, then
//     Heartbeat and AllocStatus frames from the agent, Registered, Allocs
//     and HeartbeatInterval frames from the server;
//   - one stream per module download: FetchModule{Digest, Offset} from the
//     agent, then a ModuleHeader frame and exactly Size-Offset raw bytes
//     (the module from Offset on) from the server. A large download
//     therefore never sits in front of a heartbeat, and a broken one
//     resumes where it stopped.
//   - the catalog stream (catalog.go), which the agent opens once it has
//     registered: CatalogWatch{Index} from the agent, then a
//     CatalogSnapshot or a CatalogDelta, then a CatalogDelta per change,
//     from the server, for the agent's replica of the service catalog.
//   - the streams the server opens, one per request: LogRequest, answered
//     by a LogHeader frame and raw log bytes until the log ends or (Follow)
//     the server resets the stream; SignalTask, answered by TaskSignalled;
//     StatsRequest, answered by TaskStats; RestartTask, answered by
//     TaskRestarted.
//
// A frame is a 4-byte big-endian length, a 1-byte message type and a JSON
// payload; the length covers type and payload. Frames larger than MaxFrame
// or of unknown type are protocol errors that close the stream.
//
// The package owns its types: what travels is defined here (task.go holds
// the task as an agent runs it), never borrowed from the job language or
// the coordinator's records, so a change elsewhere changes the wire only
// through the code that converts into these types. Every frame type's
// encoding is pinned by a golden file in testdata/ (go test -update
// rewrites them): a change of the wire shows in review, and calls for a
// new protocol Version (version.go), which agent and server agree on in
// Register and Registered; a server refuses an agent it shares no version
// with in an Error naming both sides' versions.
//
// It also owns the agent's side of the link's security (join.go): the CA
// pin check a server's certificate must pass, and RequestCertificate, the
// Join exchange that turns a token into a client certificate. It does no
// I/O beyond the reader or writer it is handed, and imports no other
// package of Strata: it is plumbing both sides share.
package wire
