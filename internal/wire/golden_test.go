package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the fixtures")

// fixtures holds one value of every frame type, every field set, so that
// any change of the encoding (a field renamed, added, retyped, a type
// renumbered) changes a golden file and shows in review.
func fixtures() []struct {
	typ Type
	v   any
} {
	code := 137
	task := Task{
		Name: "web", Driver: DriverWasm, Meta: map[string]string{"owner": "ops"},
		Config: TaskConfig{
			Module: "web@1.4.2", ModuleDigest: "sha256:" + strings.Repeat("ab", 32), Mode: ModeHTTP,
			Args: []string{"-port", "${STRATA_PORT_http}"}, MaxRequestTime: 2 * time.Second, MaxConcurrency: 8,
			MaxRuntime: time.Minute,
			Image:      "registry.local/web:1", Command: "/bin/web", Ports: []string{"admin"},
		},
		Env:       map[string]string{"DB_HOST": "db01.example.com", "LISTEN": "${STRATA_ADDR_http}"},
		Resources: Resources{CPU: 500, MemoryMB: 128, Ports: []string{"http"}},
		Services: []Service{{Name: "my-service-webs-frontend", Tags: []string{"prod"}, CanaryTags: []string{"canary"}, Port: "http", Checks: []Check{{
			Type: "http", Path: "/health", Interval: 10 * time.Second, Timeout: 2 * time.Second,
			CheckRestart: &CheckRestart{Limit: 3, Grace: 90 * time.Second},
		}}}},
		Restart:         &RestartPolicy{Attempts: 2, Interval: time.Minute, Delay: 15 * time.Second, Mode: "fail"},
		KillTimeout:     5 * time.Second,
		ShutdownDelay:   2 * time.Second,
		Lifecycle:       &Lifecycle{Hook: HookPrestart, Sidecar: true},
		VolumeMounts:    []VolumeMount{{Volume: "data", HostVolume: "shared-data", Destination: "/data", ReadOnly: true}},
		DispatchPayload: &DispatchPayload{File: "input/params.json", Data: []byte(`{"n":1}`)},
	}
	return []struct {
		typ Type
		v   any
	}{
		{TypeRegister, Register{Versions: []int{2}, NodeID: "3f0c9d5e-node", Name: "edge-1", Datacenter: "us-west-1", Address: "10.0.0.7",
			CPU: 8000, MemoryMB: 16384, Drivers: map[string]bool{"docker": true, "wasm": true},
			Attributes: map[string]string{"cpu.arch": "amd64", "kernel.name": "linux"}, Meta: map[string]string{"rack": "r1"},
			HostVolumes: map[string]HostVolume{"certs": {Path: "/etc/ssl/certs", ReadOnly: true}}}},
		{TypeRegistered, Registered{Version: 2, NodeID: "3f0c9d5e-node", HeartbeatMillis: 333, Servers: []string{"10.0.0.1:4702", "10.0.0.2:4702"}}},
		{TypeHeartbeat, Heartbeat{}},
		{TypeAllocs, Allocs{Index: 42, Allocs: []Alloc{{
			ID: "9a1e-alloc", Name: "my-service.webs[2]", JobID: "my-service", JobVersion: 3, Group: "webs", DesiredStatus: "run", Index: 2, Region: "global",
			StopAfterOfflineMillis: 600000, DeploymentID: "5c2d-deploy", Canary: true,
			Health: &HealthPolicy{Mode: HealthChecks, MinHealthyTime: 10 * time.Second, HealthyDeadline: 5 * time.Minute},
			Tasks:  []Task{task},
			Ports:  []Port{{Label: "http", Value: 23456, To: 8080}},
		}}}},
		{TypeAllocStatus, AllocStatus{AllocID: "9a1e-alloc", ClientStatus: "running", Description: "web: restarting in 15s",
			Endpoints: []Endpoint{{Service: "my-service-webs-frontend", Tags: []string{"canary"}, Port: 23456, Healthy: true, Canary: true}},
			Health:    Healthy, HealthTime: 1700000002000000000,
			TaskStates: map[string]*TaskState{"web": {State: TaskRunning, Failed: true, Restarts: 1, StartedAt: 1700000000000000000, FinishedAt: 1700000001000000000,
				Events: []TaskEvent{{Type: EventTerminated, Time: 1700000000500000000, Message: "Exit Code: 137", ExitCode: &code,
					RestartDelayMillis: 15000, FailsTask: true}}}}}},
		{TypeFetchModule, FetchModule{Digest: "sha256:" + strings.Repeat("ab", 32), Offset: 700000}},
		{TypeModule, ModuleHeader{Digest: "sha256:" + strings.Repeat("ab", 32), Size: 2097152, Offset: 700000, Error: "offset past the end"}},
		{TypeError, Error{Message: "no common protocol version", Temporary: true, Versions: &VersionMismatch{Agent: []int{2}, Server: []int{1}}}},
		{TypeJoin, Join{Token: "a1b2.secret", NodeID: "3f0c9d5e-node", Name: "edge-1", CSR: []byte("DER bytes of a CSR")}},
		{TypeJoined, Joined{CertPEM: []byte("-----BEGIN CERTIFICATE-----\n")}},
		{TypeLogRequest, LogRequest{AllocID: "9a1e-alloc", Task: "web", Type: "stderr", Follow: true, TailLines: 20}},
		{TypeLogHeader, LogHeader{Error: "no stderr log for task \"web\""}},
		{TypeHeartbeatInterval, HeartbeatInterval{Millis: 2000}},
		{TypeSignalTask, SignalTask{AllocID: "9a1e-alloc", Task: "web", Signal: "SIGHUP"}},
		{TypeTaskSignalled, TaskSignalled{Error: "task \"web\" is not running"}},
		{TypeStatsRequest, StatsRequest{AllocID: "9a1e-alloc", Task: "web"}},
		{TypeTaskStats, TaskStats{AllocID: "9a1e-alloc", Task: "web", Time: 1700000000000000000,
			Measured:    []string{MeasuredMemory, MeasuredCPU, MeasuredInstances, MeasuredRequests},
			MemoryBytes: 12 << 20, MemoryLimitBytes: 128 << 20, CPUPercent: 12.5, CPUTotalNanos: 3_000_000_000,
			Instances: 2, Requests: 1234, Error: "not measured"}},
		{TypeCatalogWatch, CatalogWatch{Index: 42}},
		{TypeCatalogSnapshot, CatalogSnapshot{Index: 42, Catalog: []byte("S\x01 registry codec bytes")}},
		{TypeCatalogDelta, CatalogDelta{Index: 43, Delta: []byte("D\x01 registry codec bytes")}},
		{TypeRestartTask, RestartTask{AllocID: "9a1e-alloc", Task: "web"}},
		{TypeTaskRestarted, TaskRestarted{Tasks: []string{"web"}, Error: "task \"web\" is not running"}},
	}
}

// goldenText is a frame as a golden file holds it: a line naming the
// frame's header, then its JSON payload indented. Indentation is the only
// liberty taken: the compacted body is byte for byte the payload.
func goldenText(frame []byte) string {
	n := binary.BigEndian.Uint32(frame[:4])
	var body bytes.Buffer
	json.Indent(&body, frame[5:], "", "  ")
	return fmt.Sprintf("# %s: length %d (type byte + payload), type %d, then this JSON compacted\n%s\n", Type(frame[4]), n, frame[4], body.String())
}

// The encoding of every frame type is pinned by a golden file; run with
// -update after a deliberate change of the protocol (a new Version).
func TestGoldenFrames(t *testing.T) {
	seen := map[Type]bool{}
	for _, f := range fixtures() {
		t.Run(f.typ.String(), func(t *testing.T) {
			seen[f.typ] = true
			assertAllSet(t, f.typ.String(), reflect.ValueOf(f.v))
			var buf bytes.Buffer
			if err := Write(&buf, f.typ, f.v); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", f.typ.String()+".golden")
			got := goldenText(buf.Bytes())
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/wire -run TestGoldenFrames -update to create it)", err)
			}
			if got != string(want) {
				t.Fatalf("the encoding of %s changed: a protocol change needs a new wire.Version.\ngot:\n%s\nwant (%s):\n%s", f.typ, got, path, want)
			}
			// And the golden bytes decode back to the fixture.
			_, body, _ := strings.Cut(string(want), "\n")
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(body)); err != nil {
				t.Fatal(err)
			}
			out := reflect.New(reflect.TypeOf(f.v))
			if err := Decode(f.typ, compact.Bytes(), out.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out.Elem().Interface(), f.v) {
				t.Fatalf("%s decodes to\n%+v\nwant\n%+v", path, out.Elem().Interface(), f.v)
			}
		})
	}
	for typ := TypeRegister; typ <= MaxType; typ++ {
		if !seen[typ] && typeNames[typ] != "" {
			t.Errorf("frame type %s has no golden fixture", typ)
		}
	}
}

// assertAllSet fails for any zero field reachable from v: a fixture that
// leaves a field out would let that field's encoding change unseen.
func assertAllSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			t.Errorf("fixture leaves %s nil", path)
			return
		}
		assertAllSet(t, path, v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				if v.Field(i).IsZero() {
					t.Errorf("fixture leaves %s.%s zero", path, f.Name)
					continue
				}
				assertAllSet(t, path+"."+f.Name, v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			assertAllSet(t, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			assertAllSet(t, fmt.Sprintf("%s[%v]", path, k), v.MapIndex(k))
		}
	}
}
