// Package wire is the protocol between an edge agent and a coordinator
// server, spoken over one QUIC connection per agent.
//
// The agent dials out (so it works behind NAT) and opens streams; the server
// never dials the agent. Streams:
//
//   - the control stream, the first one the agent opens: Register, then
//     Heartbeat and AllocStatus frames from the agent, Registered and Allocs
//     frames from the server;
//   - one stream per module download: FetchModule{Digest, Offset} from the
//     agent, then a ModuleHeader frame and exactly Size-Offset raw bytes
//     (the module from Offset on) from the server. A large download
//     therefore never sits in front of a heartbeat, and a broken one
//     resumes where it stopped.
//   - one stream per log read, the only streams the server opens: LogRequest
//     from the server, then a LogHeader frame and raw log bytes from the
//     agent until the log ends or (Follow) the server resets the stream.
//
// A frame is a 4-byte big-endian length, a 1-byte message type and a JSON
// payload; the length covers type and payload. Frames larger than MaxFrame
// or of unknown type are protocol errors that close the stream.
//
// The package owns the framing and the message types, and the agent's
// side of the link's security (join.go): the CA pin check a server's
// certificate must pass, and RequestCertificate, the Join exchange that
// turns a token into a client certificate. It does no I/O beyond the
// reader or writer it is handed.
package wire
