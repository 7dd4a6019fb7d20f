package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/strata-run/strata/spec"
)

// ALPN is the TLS application protocol of the agent link. A server refuses
// a connection that does not negotiate it.
const ALPN = "strata-agent/1"

// MaxFrame bounds one frame (type + payload).
const MaxFrame = 16 << 20

// Type is a frame's message type.
type Type byte

// Message types. Values are part of the protocol: never renumber.
const (
	TypeRegister    Type = 1 // agent -> server, Register
	TypeRegistered  Type = 2 // server -> agent, Registered
	TypeHeartbeat   Type = 3 // agent -> server, Heartbeat
	TypeAllocs      Type = 4 // server -> agent, Allocs
	TypeAllocStatus Type = 5 // agent -> server, AllocStatus
	TypeFetchModule Type = 6 // agent -> server, FetchModule
	TypeModule      Type = 7 // server -> agent, ModuleHeader
	TypeError       Type = 8 // either way, Error; the sender closes after it

	// 9-10 are reserved (Join, Joined) and 11-12 (logs).

	// MaxType is the highest message type this version knows; Read
	// refuses any above it.
	MaxType = TypeError
)

func (t Type) String() string {
	switch t {
	case TypeRegister:
		return "Register"
	case TypeRegistered:
		return "Registered"
	case TypeHeartbeat:
		return "Heartbeat"
	case TypeAllocs:
		return "Allocs"
	case TypeAllocStatus:
		return "AllocStatus"
	case TypeFetchModule:
		return "FetchModule"
	case TypeModule:
		return "Module"
	case TypeError:
		return "Error"
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
	if t < TypeRegister || t > MaxType {
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

// Register is the agent's first frame on the control stream.
type Register struct {
	NodeID     string            `json:"NodeID"`
	Name       string            `json:"Name"`
	Datacenter string            `json:"Datacenter"`
	Address    string            `json:"Address"` // IP its tasks listen on
	CPU        int               `json:"CPU"`     // MHz
	MemoryMB   int               `json:"MemoryMB"`
	Drivers    map[string]bool   `json:"Drivers"`
	Attributes map[string]string `json:"Attributes,omitempty"`
	Meta       map[string]string `json:"Meta,omitempty"`
}

// Registered answers Register.
type Registered struct {
	NodeID string `json:"NodeID"`
	// HeartbeatMillis is how often the agent must send a Heartbeat.
	HeartbeatMillis int64 `json:"HeartbeatMillis"`
	// Servers are the agent addresses of the servers this one knows, so
	// the agent can fail over to servers it was not told of.
	Servers []string `json:"Servers,omitempty"`
}

// Heartbeat keeps the node alive. It carries nothing yet.
type Heartbeat struct{}

// Allocs is the complete set of allocations the server wants on the node.
// It is sent after Registered and again whenever the set changes; the agent
// reconciles to it (anything running that is absent or DesiredStatus
// "stop" is stopped).
type Allocs struct {
	Index  uint64  `json:"Index"`
	Allocs []Alloc `json:"Allocs"`
}

// Alloc is one allocation as the agent needs it: what to run and on which ports.
type Alloc struct {
	ID            string `json:"ID"`
	Name          string `json:"Name"`
	JobID         string `json:"JobID"`
	JobVersion    uint64 `json:"JobVersion"`
	Group         string `json:"Group"`
	DesiredStatus string `json:"DesiredStatus"`
	// StopAfterOfflineMillis: the agent stops this allocation itself once
	// it has been unable to reach any server this long (the group's
	// disconnect.stop_on_client_after); 0 keeps it running.
	StopAfterOfflineMillis int64        `json:"StopAfterOfflineMillis,omitempty"`
	Tasks                  []*spec.Task `json:"Tasks"`
	Ports                  []Port       `json:"Ports,omitempty"`
}

// Port is a port assigned on the node.
type Port struct {
	Label string `json:"Label"`
	Value int    `json:"Value"`
	To    int    `json:"To,omitempty"`
}

// AllocStatus reports an allocation's state on the agent.
type AllocStatus struct {
	AllocID      string     `json:"AllocID"`
	ClientStatus string     `json:"ClientStatus"` // pending, running, complete, failed
	Description  string     `json:"Description,omitempty"`
	Endpoints    []Endpoint `json:"Endpoints,omitempty"`
}

// Endpoint is a service instance the agent serves for an allocation.
type Endpoint struct {
	Service string   `json:"Service"`
	Tags    []string `json:"Tags,omitempty"`
	Port    int      `json:"Port"`
	Healthy bool     `json:"Healthy"`
}

// FetchModule asks for a module's bytes by digest, from Offset on: an
// agent resuming a broken download asks for what its partial file lacks.
type FetchModule struct {
	Digest string `json:"Digest"` // "sha256:<hex>"
	Offset int64  `json:"Offset,omitempty"`
}

// ModuleHeader precedes the module's bytes from Offset to Size (Size is
// the whole module's length, so Size-Offset raw bytes follow); Error is
// set instead when the server does not have the module or Offset is past
// its end.
type ModuleHeader struct {
	Digest string `json:"Digest"`
	Size   int64  `json:"Size"`
	Offset int64  `json:"Offset,omitempty"`
	Error  string `json:"Error,omitempty"`
}

// Error is sent before closing a stream for a reason the peer should show.
type Error struct {
	Message string `json:"Message"`
}
