package registry

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
)

func allocIDs(eps []Endpoint) []string {
	var ids []string
	for _, e := range eps {
		ids = append(ids, e.AllocID)
	}
	return ids
}

// webEndpoints is service web as the coordinator stores it today.
func webEndpoints() []Endpoint {
	return []Endpoint{
		{Service: "web", Tags: []string{"prod"}, AllocID: "a1", NodeID: "n1", NodeName: "edge-1", Address: "10.0.0.1", Port: 8080, Healthy: true},
		{Service: "web", Tags: []string{"canary"}, AllocID: "a2", NodeID: "n2", NodeName: "edge-2", Address: "10.0.0.2", Port: 8080, Healthy: true},
		{Service: "web", Tags: []string{"prod", "Blue"}, AllocID: "a3", NodeID: "n1", NodeName: "edge-1", Address: "10.0.0.1", Port: 9090, Healthy: true},
		{Service: "web", Tags: []string{"prod"}, AllocID: "a4", NodeID: "n3", NodeName: "edge-3", Address: "10.0.0.3", Port: 8080, Healthy: false},
		{Service: "web", Tags: []string{"prod"}, AllocID: "a5", NodeID: "n4", NodeName: "edge-4", Address: "2001:db8::1", Port: 8080, Healthy: true},
	}
}

func TestHealthyWithTag(t *testing.T) {
	eps := webEndpoints()
	cases := []struct {
		tag  string
		want []string
	}{
		{"", []string{"a1", "a2", "a3", "a5"}},
		{"prod", []string{"a1", "a3", "a5"}},
		{"PROD", []string{"a1", "a3", "a5"}},
		{"blue", []string{"a3"}},
		{"canary", []string{"a2"}},
		{"staging", nil},
	}
	eps[1].Canary = true // an unpromoted canary: only its tag finds it
	cases[0].want = []string{"a1", "a3", "a5"}
	for _, tc := range cases {
		t.Run(tc.tag, func(t *testing.T) {
			got := HealthyWithTag(eps, tc.tag)
			if ids := allocIDs(got); !slices.Equal(ids, tc.want) {
				t.Errorf("HealthyWithTag(%q) = %v, want %v", tc.tag, ids, tc.want)
			}
			if tc.want == nil && got != nil {
				t.Errorf("want nil, got empty non-nil slice")
			}
		})
	}
	if HealthyWithTag(nil, "") != nil {
		t.Errorf("HealthyWithTag(nil) != nil")
	}
}

func TestHealthyWithTagDoesNotAlias(t *testing.T) {
	eps := []Endpoint{{AllocID: "a", Healthy: true}, {AllocID: "b", Healthy: true}}
	got := HealthyWithTag(eps, "")
	got[0].AllocID = "changed"
	if eps[0].AllocID != "a" {
		t.Errorf("HealthyWithTag returned a slice sharing the input's array")
	}
}

func TestStaticCatalog(t *testing.T) {
	tags := []string{"prod"}
	c := NewStaticCatalog(
		Endpoint{Service: "Web", AllocID: "1", Tags: tags},
		Endpoint{Service: "db", AllocID: "2"},
		Endpoint{Service: "web", AllocID: "3"},
	)
	tags[0] = "mutated"

	for _, name := range []string{"web", "WEB", "Web"} {
		if got := allocIDs(c.Endpoints(name)); !slices.Equal(got, []string{"1", "3"}) {
			t.Errorf("Endpoints(%q) = %v, want [1 3] in insertion order", name, got)
		}
	}
	if got := c.Endpoints("web")[0].Tags; !slices.Equal(got, []string{"prod"}) {
		t.Errorf("tags %v: the catalog kept the caller's slice", got)
	}
	if got := c.Endpoints("nope"); got != nil {
		t.Errorf("Endpoints(unknown) = %v, want nil", got)
	}
	got := c.Endpoints("db")
	got[0].AllocID = "changed"
	if c.Endpoints("db")[0].AllocID != "2" {
		t.Errorf("Endpoints returned the catalog's own slice")
	}
	if s := c.Services(); !slices.Equal(s, []string{"db", "web"}) {
		t.Errorf("Services() = %v", s)
	}
	var nilCat *StaticCatalog
	if nilCat.Endpoints("web") != nil || nilCat.Services() != nil {
		t.Errorf("nil catalog is not empty")
	}
	var _ Catalog = c
}

func TestEndpointJSON(t *testing.T) {
	e := Endpoint{Service: "web", AllocID: "a", NodeID: "n", NodeName: "edge", Address: "10.0.0.1", Port: 80, Healthy: true}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"Service":"web","AllocID":"a","NodeID":"n","NodeName":"edge","Address":"10.0.0.1","Port":80,"Healthy":true}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

func TestHexLabel(t *testing.T) {
	cases := []struct {
		addr, label string
	}{
		{"127.0.0.1", "7f000001"},
		{"10.0.0.255", "0a0000ff"},
		{"::ffff:10.0.0.1", "0a000001"},
		{"2001:db8::1", "20010db8000000000000000000000001"},
		{"fe80::1%eth0", "fe800000000000000000000000000001"},
		{"::", "00000000000000000000000000000000"},
	}
	for _, tc := range cases {
		a, ok := parseEndpointAddr(tc.addr)
		if !ok {
			t.Fatalf("parseEndpointAddr(%q) failed", tc.addr)
		}
		if got := hexLabel(a); got != tc.label {
			t.Errorf("hexLabel(%s) = %q, want %q", tc.addr, got, tc.label)
		}
		back, ok := parseHexLabel(tc.label)
		if !ok || back != a {
			t.Errorf("parseHexLabel(%q) = %v %v, want %v", tc.label, back, ok, a)
		}
	}
	for _, bad := range []string{"", "7f00001", "7f0000011", "7f00000g", "0x000001", "20010db800000000000000000000001"} {
		if a, ok := parseHexLabel(bad); ok {
			t.Errorf("parseHexLabel(%q) = %v, want failure", bad, a)
		}
	}
	if a, ok := parseHexLabel("7F000001"); !ok || a != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("uppercase hex: %v %v", a, ok)
	}
	for _, bad := range []string{"", "bogus", "10.0.0.1:80", "[::1]"} {
		if _, ok := parseEndpointAddr(bad); ok {
			t.Errorf("parseEndpointAddr(%q) succeeded", bad)
		}
	}
}

func TestEndpointInstance(t *testing.T) {
	e := webEndpoints()[3]
	got := e.Instance("a4/0")
	want := Instance{ID: "a4/0", Service: "web", Tags: []string{"prod"}, Address: "10.0.0.3", Port: 8080,
		Node: "edge-3", NodeID: "n3", AllocID: "a4", Health: HealthCritical}
	if !sameInstance(&got, &want) {
		t.Errorf("Instance() = %+v, want %+v", got, want)
	}
	if h := webEndpoints()[0].Instance("x").Health; h != HealthPassing {
		t.Errorf("a healthy endpoint is %v", h)
	}
}
