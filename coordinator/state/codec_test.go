package state

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-run/strata/coordinator/structs"
	"github.com/strata-run/strata/registry"
	"github.com/strata-run/strata/sched"
)

// fillRandom sets every field reachable from v to a random non-zero
// value: a field the codec forgets comes back zero and fails the
// round-trip.
func fillRandom(t *testing.T, v reflect.Value, r *rand.Rand) {
	switch v.Kind() {
	case reflect.String:
		letters := []rune("abcdefghijklmnopqrstuvwxyz-.[]0123456789é")
		var b strings.Builder
		for range 1 + r.IntN(40) {
			b.WriteRune(letters[r.IntN(len(letters))])
		}
		v.SetString(b.String())
	case reflect.Int, reflect.Int64:
		n := r.Int64()>>r.IntN(63) | 1
		if r.IntN(2) == 0 {
			n = -n
		}
		v.SetInt(n)
	case reflect.Uint64:
		v.SetUint(r.Uint64()>>r.IntN(64) | 1)
	case reflect.Uint8: // sched.Health, the only byte-sized field: its valid values
		v.SetUint(uint64(1 + r.IntN(2)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		n := 1 + r.IntN(3)
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fillRandom(t, v.Index(i), r)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fillRandom(t, v.Field(i), r)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillRandom(t, v.Elem(), r)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 1 + r.IntN(3) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillRandom(t, k, r)
			fillRandom(t, e, r)
			v.SetMapIndex(k, e)
		}
	default:
		t.Fatalf("fillRandom: no rule for %s: extend the codec and this test", v.Type())
	}
}

func TestAllocCodecCoversEveryField(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		var a structs.Alloc
		fillRandom(t, reflect.ValueOf(&a).Elem(), r)
		got, err := decodeAllocRecord(appendAllocRecord(nil, &a))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, &a) {
			t.Fatalf("case %d: stored allocation round-trip:\n got %+v\nwant %+v", i, got, &a)
		}
	}
}

func TestAllocRecordZeroValue(t *testing.T) {
	a := &structs.Alloc{}
	got, err := decodeAllocRecord(appendAllocRecord(nil, a))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("got %+v, want %+v (nil slices stay nil)", got, a)
	}
}

func testPlan(t *testing.T, r *rand.Rand) *PlanApply {
	c := &PlanApply{
		Stop: []AllocStop{{ID: "old-1", Desc: "job updated"}, {ID: "old-2", Desc: "job updated"}},
		Eval: &structs.Eval{ID: "e1", JobID: "j", Status: structs.EvalBlocked, SnapshotIndex: 7,
			Failed: map[string]*sched.Explanation{"g": {NodesEvaluated: 3}}},
	}
	for i := range 50 {
		a := &sched.Allocation{}
		fillRandom(t, reflect.ValueOf(a).Elem(), r)
		if i%2 == 0 { // shared strings, as in a real plan
			a.EvalID, a.JobID, a.Group, a.DesiredStatus, a.ClientStatus = "e1", "j", "g", sched.DesiredRun, sched.ClientPending
			a.Ports = nil
		}
		c.Place = append(c.Place, a)
	}
	c.FollowUps = []FollowUp{{EvalID: "f1", WaitUntil: 1_700_000_005_000_000_000, AllocIDs: []string{"old-1", "old-2"}}, {EvalID: "f2", WaitUntil: 7, AllocIDs: []string{"x"}}}
	c.InPlace = []AllocMove{{ID: "kept-1", JobVersion: 3}, {ID: "kept-2", JobVersion: 3}}
	c.Time = 1_796_385_600_000_000_000
	return c
}

func TestPlanCmdRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []*PlanApply{testPlan(t, r), {}, {Stop: []AllocStop{{ID: "x"}}}} {
		b, err := appendPlanCmd(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePlanCmd(b)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got.Place { // each placement is its record's allocation
			if p != &got.records[i].Allocation {
				t.Fatalf("placement %d is not in its decoded record", i)
			}
		}
		got.records = nil
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("plan round-trip:\n got %+v\nwant %+v", got, c)
		}
	}
}

// Every truncation of a valid record is refused with an error naming the
// record, the field and the offset; none panics or decodes silently.
func TestCorruptRecordsAreRefusedByField(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var a structs.Alloc
	fillRandom(t, reflect.ValueOf(&a).Elem(), r)
	rec := appendAllocRecord(nil, &a)
	plan, err := appendPlanCmd(nil, testPlan(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(rec) {
		_, err := decodeAllocRecord(rec[:n])
		if !errors.Is(err, ErrCorruptRecord) {
			t.Fatalf("allocation truncated to %d bytes: err %v", n, err)
		}
		if n > 0 && !strings.Contains(err.Error(), "allocation: ") {
			t.Fatalf("allocation truncated to %d bytes: %q does not name a field", n, err)
		}
	}
	for n := range len(plan) {
		if _, err := decodePlanCmd(plan[:n]); !errors.Is(err, ErrCorruptRecord) {
			t.Fatalf("plan truncated to %d bytes: err %v", n, err)
		}
	}

	cases := []struct {
		name string
		dec  func() error
		want string
	}{
		{"trailing bytes", func() error { _, err := decodeAllocRecord(append(rec, 0)); return err }, "1 trailing bytes"},
		{"old JSON allocation", func() error { _, err := decodeAllocRecord([]byte(`{"ID":"a"}`)); return err }, "an older state format"},
		{"unknown version", func() error { _, err := decodeAllocRecord([]byte{9}); return err }, "version byte 1"},
		{"count beyond the record", func() error { _, err := decodeAllocRecord([]byte{allocRecordV1, 0xff, 0x01}); return err }, "ID at byte 1: count 255 exceeds"},
		{"string not in the table", func() error {
			// version, one string "a", no eval, no stops, one placement
			// whose ID is "x" and whose EvalID refers to string 5.
			_, err := decodePlanCmd([]byte{planCmdV1, 1, 1, 'a', 0, 0, 1, 1, 'x', 5})
			return err
		}, "EvalID at byte 9: string 5 not in the table of 1"},
		{"bad eval", func() error { _, err := decodePlanCmd([]byte{planCmdV1, 0, 2, '{', '"', 0, 0}); return err }, "plan: Eval"},
		{"bad boolean", func() error {
			b := appendAllocRecord(nil, &structs.Alloc{Endpoints: []registry.Endpoint{{Healthy: true}}})
			b[len(b)-4] = 7 // Healthy, before Canary, UnknownSince and the (empty) TaskStates
			_, err := decodeAllocRecord(b)
			return err
		}, "Endpoints.Healthy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dec()
			if !errors.Is(err, ErrCorruptRecord) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrCorruptRecord containing %q", err, tc.want)
			}
		})
	}
}

// Apply refuses a malformed plan as a command (the batch goes on) and
// the retired JSON plan by name.
func TestApplyRefusesMalformedPlans(t *testing.T) {
	h := newHarness(t)
	res, _ := h.applyRaw(
		append([]byte{byte(CmdPlanApply)}, planCmdV1, 3),
		append([]byte{byte(cmdPlanApplyJSON)}, `{"Place":[]}`...),
		mustEncode(t, &PlanApply{Place: []*sched.Allocation{{ID: "a1", JobID: "j", NodeID: "n1"}}}),
	)
	for i, want := range []string{"malformed command 14", "retired JSON encoding"} {
		if err := res[i].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("result %d: %+v, want an error containing %q", i, res[i], want)
		}
	}
	if res[2].Err != nil {
		t.Fatalf("valid plan: %v", res[2].Err)
	}
	if a, err := h.st.Alloc("a1"); err != nil || a == nil || a.CreateIndex != 3 {
		t.Fatalf("the valid plan's allocation: %+v, %v", a, err)
	}
	if got, err := h.st.NodeAllocs("n1"); err != nil || len(got) != 1 || got[0].ID != "a1" {
		t.Fatalf("NodeAllocs(n1) = %+v, %v", got, err)
	}
}

func FuzzDecodeAllocRecord(f *testing.F) {
	f.Add(appendAllocRecord(nil, &structs.Alloc{Allocation: sched.Allocation{ID: "a", Ports: []sched.PortMapping{{Label: "http", Value: 8080}}},
		Endpoints: []registry.Endpoint{{Service: "s", Tags: []string{"t"}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAllocRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not ErrCorruptRecord: %v", err)
			}
			return
		}
		again, err := decodeAllocRecord(appendAllocRecord(nil, a))
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("re-encoding a decoded record: %v\n got %+v\nwant %+v", err, again, a)
		}
	})
}

func FuzzDecodePlanCmd(f *testing.F) {
	b, _ := appendPlanCmd(nil, &PlanApply{Place: []*sched.Allocation{{ID: "a", JobID: "j"}, {ID: "b", JobID: "j"}},
		Stop: []AllocStop{{ID: "c", Desc: "d"}}, Eval: &structs.Eval{ID: "e"}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodePlanCmd(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error not ErrCorruptRecord: %v", err)
			}
			return
		}
		enc, err := appendPlanCmd(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodePlanCmd(enc)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("re-encoding a decoded plan: %v\n got %+v\nwant %+v", err, again, c)
		}
	})
}

func TestIDListRoundTrip(t *testing.T) {
	want := []string{"a", "", strings.Repeat("x", 300), "0195f3c2-7a10-7000-8000-000000000000"}
	var l idList
	for _, id := range want {
		l = l.add(id)
	}
	if got := l.ids(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ids() = %q, want %q", got, want)
	}
	if got := idList(nil).ids(); got != nil {
		t.Fatalf("empty list: %q", got)
	}
}

// Records and plans written before deployments (version 1) still read:
// the state file and the Raft log of an older server stay valid.
func TestVersion1RecordsStillRead(t *testing.T) {
	a := &structs.Alloc{Allocation: sched.Allocation{ID: "a1", JobID: "j", Group: "g", Index: 2, NodeID: "n1",
		DesiredStatus: sched.DesiredRun, ClientStatus: sched.ClientRunning, CreateIndex: 4, ModifyIndex: 5},
		Endpoints: []registry.Endpoint{{Service: "web", Port: 80, Healthy: true}}, UnknownSince: 9}
	e := encoder{buf: []byte{allocRecordV1}, v: allocRecordV1}
	e.allocation(&a.Allocation)
	e.uvarint(1)
	e.str("web")
	e.uvarint(0)
	e.str("")
	e.str("")
	e.str("")
	e.str("")
	e.varint(80)
	e.bool(true)
	e.varint(9)
	e.str("")
	got, err := decodeAllocRecord(e.buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("v1 record:\n got %+v\nwant %+v", got, a)
	}

	body := encoder{table: map[string]uint64{}, v: planCmdV1}
	body.uvarint(0) // no evaluation
	body.uvarint(0) // no stops
	body.uvarint(1) // one placement
	body.allocation(&a.Allocation)
	p := encoder{buf: []byte{planCmdV1}}
	p.uvarint(uint64(len(body.strs)))
	for _, str := range body.strs {
		p.str(str)
	}
	plan, err := decodePlanCmd(append(p.buf, body.buf...))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Place) != 1 || !reflect.DeepEqual(*plan.Place[0], a.Allocation) || plan.Time != 0 || plan.InPlace != nil {
		t.Fatalf("v1 plan: %+v", plan)
	}
}
