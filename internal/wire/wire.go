package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ALPN is the TLS application protocol of the agent link. A server refuses
// a connection that does not negotiate it. It names the link, not the
// protocol version: versions are agreed in Register (version.go), where a
// mismatch can be refused with a message instead of a TLS alert.
const ALPN = "strata-agent/1"

// MaxFrame bounds one frame (type + payload).
const MaxFrame = 16 << 20

// Type is a frame's message type.
type Type byte

// Message types. Values are part of the protocol: never renumber.
const (
	TypeRegister          Type = 1  // agent -> server, Register
	TypeRegistered        Type = 2  // server -> agent, Registered
	TypeHeartbeat         Type = 3  // agent -> server, Heartbeat
	TypeAllocs            Type = 4  // server -> agent, Allocs
	TypeAllocStatus       Type = 5  // agent -> server, AllocStatus
	TypeFetchModule       Type = 6  // agent -> server, FetchModule
	TypeModule            Type = 7  // server -> agent, ModuleHeader
	TypeError             Type = 8  // either way, Error; the sender closes after it
	TypeJoin              Type = 9  // agent -> server, Join: first frame of a connection without a client certificate
	TypeJoined            Type = 10 // server -> agent, Joined; the server then closes the connection
	TypeLogRequest        Type = 11 // server -> agent, LogRequest, on a stream the server opens
	TypeLogHeader         Type = 12 // agent -> server, LogHeader, then raw log bytes
	TypeHeartbeatInterval Type = 13 // server -> agent, HeartbeatInterval, on the control stream
	TypeSignalTask        Type = 14 // server -> agent, SignalTask, on a stream the server opens
	TypeTaskSignalled     Type = 15 // agent -> server, TaskSignalled, answers SignalTask
	TypeStatsRequest      Type = 16 // server -> agent, StatsRequest, on a stream the server opens
	TypeTaskStats         Type = 17 // agent -> server, TaskStats, answers StatsRequest
	TypeCatalogWatch      Type = 18 // agent -> server, CatalogWatch, first frame of the catalog stream the agent opens (catalog.go)
	TypeCatalogSnapshot   Type = 19 // server -> agent, CatalogSnapshot, on the catalog stream
	TypeCatalogDelta      Type = 20 // server -> agent, CatalogDelta, on the catalog stream
	TypeRestartTask       Type = 21 // server -> agent, RestartTask, on a stream the server opens
	TypeTaskRestarted     Type = 22 // agent -> server, TaskRestarted, answers RestartTask
)

// MaxType is the highest message type this version knows; Read rejects
// frames of a higher type.
const MaxType = TypeTaskRestarted

var typeNames = [...]string{
	TypeRegister:          "Register",
	TypeRegistered:        "Registered",
	TypeHeartbeat:         "Heartbeat",
	TypeAllocs:            "Allocs",
	TypeAllocStatus:       "AllocStatus",
	TypeFetchModule:       "FetchModule",
	TypeModule:            "Module",
	TypeError:             "Error",
	TypeJoin:              "Join",
	TypeJoined:            "Joined",
	TypeLogRequest:        "LogRequest",
	TypeLogHeader:         "LogHeader",
	TypeHeartbeatInterval: "HeartbeatInterval",
	TypeSignalTask:        "SignalTask",
	TypeTaskSignalled:     "TaskSignalled",
	TypeStatsRequest:      "StatsRequest",
	TypeTaskStats:         "TaskStats",
	TypeCatalogWatch:      "CatalogWatch",
	TypeCatalogSnapshot:   "CatalogSnapshot",
	TypeCatalogDelta:      "CatalogDelta",
	TypeRestartTask:       "RestartTask",
	TypeTaskRestarted:     "TaskRestarted",
}

func (t Type) String() string {
	if t >= TypeRegister && t <= MaxType && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// ErrFrameTooLarge is returned when a frame's length exceeds MaxFrame.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// Write encodes v as one frame of type t.
func Write(w io.Writer, t Type, v any) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wire: encode %s: %w", t, err)
	}
	if len(payload)+1 > MaxFrame {
		return fmt.Errorf("%w: %s of %d bytes", ErrFrameTooLarge, t, len(payload)+1)
	}
	buf := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)+1))
	buf[4] = byte(t)
	copy(buf[5:], payload)
	_, err = w.Write(buf)
	return err
}

// Read reads one frame. It returns io.EOF only at a clean frame boundary.
func Read(r io.Reader) (Type, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return 0, nil, errors.New("wire: empty frame")
	}
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, MaxFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("wire: truncated frame: %w", err)
	}
	t := Type(buf[0])
	if t < TypeRegister || t > MaxType || typeNames[t] == "" {
		return 0, nil, fmt.Errorf("wire: unknown message type %d", buf[0])
	}
	return t, buf[1:], nil
}

// Decode unmarshals a frame payload into v, naming the type on error.
func Decode(t Type, payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("wire: malformed %s payload: %w", t, err)
	}
	return nil
}

// Expect reads one frame and decodes it into v if it is of type want. An
// Error frame becomes a *Refusal; any other type is an error naming both.
func Expect(r io.Reader, want Type, v any) error {
	t, payload, err := Read(r)
	if err != nil {
		return err
	}
	switch t {
	case want:
		return Decode(t, payload, v)
	case TypeError:
		var e Error
		if err := Decode(t, payload, &e); err != nil {
			return err
		}
		return (*Refusal)(&e)
	}
	return fmt.Errorf("wire: expected %s, got %s", want, t)
}
