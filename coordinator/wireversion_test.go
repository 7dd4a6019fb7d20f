package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-run/strata/internal/wire"
)

// Register agrees on a protocol version: the server answers with the
// newest one both speak, or refuses with an Error naming both sides'
// versions and does not register the node.
func TestRegisterAgreesOnAVersion(t *testing.T) {
	s := startTestServer(t)
	register := func(versions []int) (*wire.Registered, error) {
		t.Helper()
		conn := dialAgent(t, s)
		st, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := wire.Write(st, wire.TypeRegister, wire.Register{Versions: versions, NodeID: "n1", Name: "n1", Address: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		var ack wire.Registered
		if err := wire.Expect(st, wire.TypeRegistered, &ack); err != nil {
			return nil, err
		}
		return &ack, nil
	}

	future := wire.Version + 7
	_, err := register([]int{future})
	var r *wire.Refusal
	if !errors.As(err, &r) || r.Versions == nil || r.Versions.Agent[0] != future || r.Versions.Server[0] != wire.Version || r.Temporary {
		t.Fatalf("registering with only version %d: %v, want a final refusal carrying both sides' versions", future, err)
	}
	if !strings.Contains(r.Message, "the agent speaks ") || !strings.Contains(r.Message, "the server speaks ") {
		t.Fatalf("refusal %q does not name both sides' versions", r.Message)
	}
	if n, _ := s.Store().Node("n1"); n != nil {
		t.Fatalf("a refused agent's node was registered: %+v", n)
	}

	ack, err := register([]int{future, wire.Version})
	if err != nil || ack.Version != wire.Version {
		t.Fatalf("registering with versions %d and %d: %+v, %v; want version %d", future, wire.Version, ack, err, wire.Version)
	}
	// An agent listing no versions speaks version 1, which servers no
	// longer speak (it reports no deployment health): refused, naming it.
	if _, err := register(nil); !errors.As(err, &r) || r.Versions == nil || r.Versions.Agent[0] != 1 {
		t.Fatalf("an agent listing no versions: %v; want a refusal naming version 1", err)
	}
}
