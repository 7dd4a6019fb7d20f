package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := Allocs{Index: 7, Allocs: []Alloc{{ID: "a", Name: "j.g[0]", DesiredStatus: "run", Ports: []Port{{Label: "http", Value: 20001}}}}}
	if err := Write(&buf, TypeAllocs, in); err != nil {
		t.Fatal(err)
	}
	if err := Write(&buf, TypeHeartbeat, Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	typ, payload, err := Read(&buf)
	if err != nil || typ != TypeAllocs {
		t.Fatalf("Read = %v, %v", typ, err)
	}
	var out Allocs
	if err := Decode(typ, payload, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
	if typ, _, err := Read(&buf); err != nil || typ != TypeHeartbeat {
		t.Fatalf("second frame: %v %v", typ, err)
	}
	if _, _, err := Read(&buf); err != io.EOF {
		t.Fatalf("at a frame boundary Read must return io.EOF, got %v", err)
	}
}

// Task states and events, and the log frames, travel intact.
func TestRoundTripTaskStatesAndLogs(t *testing.T) {
	code := 3
	in := AllocStatus{AllocID: "a", ClientStatus: "pending", TaskStates: map[string]*TaskState{
		"t": {State: TaskPending, Restarts: 1, StartedAt: 10, FinishedAt: 20, Events: []TaskEvent{
			{Type: EventReceived, Time: 1},
			{Type: EventTerminated, Time: 20, Message: "exit code 3", ExitCode: &code},
			{Type: EventRestarting, Time: 21, RestartDelayMillis: 1500},
		}},
	}}
	frames := []struct {
		typ Type
		in  any
		out any
	}{
		{TypeAllocStatus, in, &AllocStatus{}},
		{TypeLogRequest, LogRequest{AllocID: "a", Task: "t", Type: "stderr", Follow: true, TailLines: 5}, &LogRequest{}},
		{TypeLogHeader, LogHeader{Error: "no such task"}, &LogHeader{}},
	}
	for _, f := range frames {
		var buf bytes.Buffer
		if err := Write(&buf, f.typ, f.in); err != nil {
			t.Fatal(err)
		}
		typ, payload, err := Read(&buf)
		if err != nil || typ != f.typ {
			t.Fatalf("Read = %v, %v; want %s", typ, err, f.typ)
		}
		if err := Decode(typ, payload, f.out); err != nil {
			t.Fatal(err)
		}
		if got := reflect.ValueOf(f.out).Elem().Interface(); !reflect.DeepEqual(got, f.in) {
			t.Fatalf("%s round trip: %+v != %+v", f.typ, got, f.in)
		}
	}
	if TypeLogRequest.String() != "LogRequest" || TypeLogHeader.String() != "LogHeader" {
		t.Fatalf("names: %s %s", TypeLogRequest, TypeLogHeader)
	}
}

// A task keeps its newest MaxTaskEvents events; a clone shares nothing.
func TestTaskStateAppendAndClone(t *testing.T) {
	var s TaskState
	for i := range MaxTaskEvents + 5 {
		s.Append(TaskEvent{Type: EventRestarting, Time: int64(i)})
	}
	if len(s.Events) != MaxTaskEvents || s.Events[0].Time != 5 || s.Events[MaxTaskEvents-1].Time != MaxTaskEvents+4 {
		t.Fatalf("events kept: %d, first %d, last %d", len(s.Events), s.Events[0].Time, s.Events[len(s.Events)-1].Time)
	}
	code := 1
	s.Events[0].ExitCode = &code
	c := s.Clone()
	c.Events[1].Type = "changed"
	*c.Events[0].ExitCode = 7
	if s.Events[1].Type != EventRestarting || *s.Events[0].ExitCode != 1 {
		t.Fatal("Clone shares events with the original")
	}
}

func TestReadRejects(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty frame", []byte{0, 0, 0, 0}, "empty frame"},
		{"too large", []byte{0x7f, 0, 0, 0, 1}, "frame too large"},
		{"unknown type", []byte{0, 0, 0, 1, 99}, "unknown message type 99"},
		{"type past MaxType", []byte{0, 0, 0, 1, byte(MaxType + 1)}, fmt.Sprintf("unknown message type %d", MaxType+1)},
		{"type zero", []byte{0, 0, 0, 1, 0}, "unknown message type 0"},
		{"truncated payload", []byte{0, 0, 0, 5, 1, '{'}, "truncated frame"},
		{"truncated header", []byte{0, 0}, "unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Read(bytes.NewReader(c.input))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Read(%v) = %v, want error containing %q", c.input, err, c.want)
			}
		})
	}
	if err := Decode(TypeRegister, []byte("{"), &Register{}); err == nil || !strings.Contains(err.Error(), "malformed Register payload") {
		t.Fatalf("Decode of bad JSON = %v", err)
	}
	if err := Write(io.Discard, TypeAllocs, Allocs{Allocs: make([]Alloc, 1)}); err != nil {
		t.Fatal(err)
	}
	big := Error{Message: strings.Repeat("x", MaxFrame)}
	if err := Write(io.Discard, TypeError, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Write of an oversized frame = %v, want ErrFrameTooLarge", err)
	}
}

// FuzzRead: no input panics or allocates beyond MaxFrame, and a frame
// that reads back decodes into its own type without panicking; a payload
// that decodes re-encodes into a frame that reads back as the same type.
func FuzzRead(f *testing.F) {
	for _, fx := range fixtures() {
		var buf bytes.Buffer
		Write(&buf, fx.typ, fx.v)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 1, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	types := map[Type]reflect.Type{}
	for _, fx := range fixtures() {
		types[fx.typ] = reflect.TypeOf(fx.v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(payload)+1 > MaxFrame {
			t.Fatalf("accepted a frame of %d bytes", len(payload)+1)
		}
		v := reflect.New(types[typ])
		if Decode(typ, payload, v.Interface()) != nil {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, typ, v.Elem().Interface()); err != nil {
			t.Fatalf("%s decoded from %q does not encode: %v", typ, payload, err)
		}
		if again, _, err := Read(&buf); err != nil || again != typ {
			t.Fatalf("re-encoded %s reads back as %s, %v", typ, again, err)
		}
	})
}

// The newest version both sides speak is picked; none in common is a
// refusal naming both sides' versions; an agent that lists none speaks 1.
func TestNegotiate(t *testing.T) {
	cases := []struct {
		agent, server []int
		want          int
	}{
		{[]int{1}, []int{1}, 1},
		{[]int{3, 2, 1}, []int{2, 1}, 2},
		{[]int{1, 2}, []int{3, 2}, 2},
		{nil, []int{2, 1}, 1},
		{[]int{3}, []int{2, 1}, 0},
		{nil, []int{2}, 0},
	}
	for _, c := range cases {
		got, err := Negotiate(c.agent, c.server)
		if got != c.want {
			t.Errorf("Negotiate(%v, %v) = %d, %v; want %d", c.agent, c.server, got, err, c.want)
		}
		var vm *VersionMismatch
		if c.want == 0 && (!errors.As(err, &vm) || !strings.Contains(err.Error(), "the agent speaks ") || !strings.Contains(err.Error(), fmt.Sprintf("the server speaks %d", c.server[0]))) {
			t.Errorf("Negotiate(%v, %v): %v, want a *VersionMismatch naming both sides", c.agent, c.server, err)
		}
	}
	if v := Versions(); len(v) == 0 || v[0] != Version || v[len(v)-1] != MinVersion {
		t.Fatalf("Versions() = %v, want %d down to %d", v, Version, MinVersion)
	}
	if got, err := Negotiate(Versions(), Versions()); err != nil || got != Version {
		t.Fatalf("a build with itself: %d, %v", got, err)
	}
}

// Expect decodes the frame it expects, turns an Error frame into a
// *Refusal and names an unexpected type.
func TestExpect(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, TypeRegistered, Registered{Version: 1, NodeID: "n"})
	Write(&buf, TypeError, Error{Message: "go away", Versions: &VersionMismatch{Agent: []int{2}, Server: []int{1}}})
	Write(&buf, TypeHeartbeat, Heartbeat{})
	var ack Registered
	if err := Expect(&buf, TypeRegistered, &ack); err != nil || ack.NodeID != "n" || ack.Version != 1 {
		t.Fatalf("Expect = %+v, %v", ack, err)
	}
	var r *Refusal
	if err := Expect(&buf, TypeRegistered, &ack); !errors.As(err, &r) || r.Message != "go away" || r.Versions == nil || r.Versions.Agent[0] != 2 {
		t.Fatalf("Expect on an Error frame = %v, want a *Refusal with its versions", err)
	}
	if err := Expect(&buf, TypeRegistered, &ack); err == nil || !strings.Contains(err.Error(), "expected Registered, got Heartbeat") {
		t.Fatalf("Expect on another type = %v", err)
	}
}

// Read knows the types up to MaxType and no further; a resumed download
// carries its offset both ways.
func TestTypeBoundAndOffsets(t *testing.T) {
	if _, _, err := Read(bytes.NewReader([]byte{0, 0, 0, 3, byte(MaxType), '{', '}'})); err != nil {
		t.Fatalf("type MaxType refused: %v", err)
	}
	if _, _, err := Read(bytes.NewReader([]byte{0, 0, 0, 3, byte(MaxType) + 1, '{', '}'})); err == nil {
		t.Fatal("a type past MaxType was accepted")
	}
	var buf bytes.Buffer
	Write(&buf, TypeFetchModule, FetchModule{Digest: "sha256:x", Offset: 1 << 40})
	Write(&buf, TypeModule, ModuleHeader{Digest: "sha256:x", Size: 1<<40 + 5, Offset: 1 << 40})
	var req FetchModule
	var hdr ModuleHeader
	for _, v := range []any{&req, &hdr} {
		typ, payload, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(typ, payload, v); err != nil {
			t.Fatal(err)
		}
	}
	if req.Offset != 1<<40 || hdr.Offset != 1<<40 || hdr.Size != 1<<40+5 {
		t.Fatalf("offsets lost: %+v %+v", req, hdr)
	}
}
