package netfault

import (
	"net"
	"testing"
	"time"
)

// echoServer answers each datagram with itself and reports whom it
// heard from.
func echoServer(t *testing.T) (*net.UDPConn, <-chan string) {
	t.Helper()
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	from := make(chan string, 64)
	go func() { // ends when the socket closes
		buf := make([]byte, 2048)
		for {
			n, addr, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case from <- addr.String():
			default:
			}
			srv.WriteToUDP(buf[:n], addr)
		}
	}()
	return srv, from
}

// roundTrip sends msg through the relay and says whether its echo came back.
func roundTrip(t *testing.T, c *net.UDPConn, msg string) bool {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && string(buf[:n]) == msg
}

func TestRelayCutHealRebind(t *testing.T) {
	srv, from := echoServer(t)
	r, err := NewRelay("127.0.0.1:0", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ra, _ := net.ResolveUDPAddr("udp", r.Addr())
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if !roundTrip(t, c, "one") {
		t.Fatal("no echo through the relay")
	}
	if got := <-from; got != r.UpstreamAddr() {
		t.Fatalf("the server heard from %s, want the relay's upstream %s", got, r.UpstreamAddr())
	}

	r.Cut()
	if roundTrip(t, c, "two") {
		t.Fatal("a datagram crossed a cut relay")
	}
	if r.Dropped() == 0 {
		t.Fatal("nothing counted as dropped while cut")
	}
	r.Heal()
	if !roundTrip(t, c, "three") {
		t.Fatal("no echo after the heal")
	}
	<-from // "three"

	before := r.UpstreamAddr()
	if err := r.Rebind(); err != nil {
		t.Fatal(err)
	}
	if !roundTrip(t, c, "four") {
		t.Fatal("no echo after the rebind")
	}
	if got := <-from; got == before || got != r.UpstreamAddr() {
		t.Fatalf("after the rebind the server heard from %s (before: %s), want the new upstream %s", got, before, r.UpstreamAddr())
	}
}

// A relay made before its server is known drops what it gets until
// SetServer.
func TestRelaySetServerLater(t *testing.T) {
	srv, _ := echoServer(t)
	r, err := NewRelay("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ra, _ := net.ResolveUDPAddr("udp", r.Addr())
	c, _ := net.DialUDP("udp", nil, ra)
	defer c.Close()
	if roundTrip(t, c, "early") {
		t.Fatal("an echo before the relay knew its server")
	}
	if err := r.SetServer(srv.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	if !roundTrip(t, c, "later") {
		t.Fatal("no echo after SetServer")
	}
}
