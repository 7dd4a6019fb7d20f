package main

import (
	"errors"
	"strings"
	"testing"
)

// The module's output is what the end-to-end tests read back
// (cmd/strata: TestRuntimeEnvEndToEnd, TestDispatchEndToEnd): sorted
// variables, the CGI header under WAGI only, then the echoed file.
func TestReport(t *testing.T) {
	files := map[string]string{"/local/in.txt": "payload\n"}
	readFile := func(n string) ([]byte, error) {
		if s, ok := files[n]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"B=2", "A=1"}, "A=1\nB=2\n"},
		{[]string{"REQUEST_METHOD=GET", "A=1"}, "Content-Type: text/plain\n\nA=1\nREQUEST_METHOD=GET\n"},
		{[]string{"ECHO_FILE=/local/in.txt"}, "ECHO_FILE=/local/in.txt\n--- /local/in.txt\npayload\n"},
		{[]string{"ECHO_FILE=/nope"}, "ECHO_FILE=/nope\n--- /nope: no such file\n"},
	} {
		getenv := func(k string) string {
			for _, kv := range tc.env {
				if v, ok := strings.CutPrefix(kv, k+"="); ok {
					return v
				}
			}
			return ""
		}
		var b strings.Builder
		report(&b, tc.env, getenv, readFile)
		if b.String() != tc.want {
			t.Errorf("report(%q) = %q, want %q", tc.env, b.String(), tc.want)
		}
	}
}
