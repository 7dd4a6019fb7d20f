package docker

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func frame(stream byte, s string) []byte {
	b := make([]byte, 8, 8+len(s))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(s)))
	return append(b, s...)
}

func TestDemux(t *testing.T) {
	for _, tc := range []struct {
		name           string
		in             []byte
		stdout, stderr string
		err            string
	}{
		{name: "empty"},
		{name: "both", in: bytes.Join([][]byte{frame(1, "out1\n"), frame(2, "err\n"), frame(1, "out2")}, nil), stdout: "out1\nout2", stderr: "err\n"},
		{name: "empty frame", in: append(frame(1, ""), frame(2, "x")...), stderr: "x"},
		{name: "daemon error", in: append(frame(1, "a"), frame(3, "log driver broke")...), stdout: "a", err: "daemon: log driver broke"},
		{name: "unknown stream", in: frame(7, "x"), err: "unknown stream 7"},
		{name: "short header", in: frame(1, "abc")[:5], err: "unexpected EOF"},
		{name: "short payload", in: frame(1, "abc")[:10], stdout: "ab", err: "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := demux(bytes.NewReader(tc.in), &out, &errb)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if out.String() != tc.stdout || errb.String() != tc.stderr {
				t.Fatalf("stdout %q stderr %q, want %q %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	for ref, want := range map[string][2]string{
		"redis":                       {"redis", "latest"},
		"redis:7":                     {"redis", "7"},
		"strata-test/hello:1":         {"strata-test/hello", "1"},
		"localhost:5000/app":          {"localhost:5000/app", "latest"},
		"localhost:5000/app:2":        {"localhost:5000/app", "2"},
		"app@sha256:abc":              {"app", "sha256:abc"},
		"reg.io:443/a/b:1@sha256:abc": {"reg.io:443/a/b:1", "sha256:abc"},
	} {
		repo, tag := splitRef(ref)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", ref, repo, tag, want[0], want[1])
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.41", "1.41", 0}, {"1.9", "1.41", -1}, {"1.50", "1.41", 1}, {"2.0", "1.99", 1}, {"1.41", "1.41.0", 0},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
