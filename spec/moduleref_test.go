package spec

import (
	"strings"
	"testing"
)

func TestParseModuleRef(t *testing.T) {
	const hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in                    string
		name, version, digest string
		err                   string // substring; "" means valid
	}{
		{in: "hello@0.1.0", name: "hello", version: "0.1.0"},
		{in: "web-frontend@1.4.2", name: "web-frontend", version: "1.4.2"},
		{in: "a.b_c-d@10.20.30", name: "a.b_c-d", version: "10.20.30"},
		{in: "0x@1.0.0-alpha", name: "0x", version: "1.0.0-alpha"},
		{in: "m@1.0.0-alpha.1", name: "m", version: "1.0.0-alpha.1"},
		{in: "m@1.0.0-0.3.7", name: "m", version: "1.0.0-0.3.7"},
		{in: "m@1.0.0-x-y.7.z.92", name: "m", version: "1.0.0-x-y.7.z.92"},
		{in: "m@1.0.0+20130313144700", name: "m", version: "1.0.0+20130313144700"},
		{in: "m@1.0.0-beta+exp.sha.5114f85", name: "m", version: "1.0.0-beta+exp.sha.5114f85"},
		{in: "m@1.0.0+001", name: "m", version: "1.0.0+001"},
		{in: strings.Repeat("a", 63) + "@1.0.0", name: strings.Repeat("a", 63), version: "1.0.0"},
		{in: "sha256:" + hex, digest: "sha256:" + hex},

		{in: "", err: "empty"},
		{in: "hello", err: "has no version"},
		{in: "hello@", err: "it is empty"},
		{in: "hello@latest", err: `version "latest" is not a semantic version`},
		{in: "hello@v1.0.0", err: `"v1" is not a number`},
		{in: "hello@1.0", err: "three numbers"},
		{in: "hello@1.0.0.0", err: "three numbers"},
		{in: "hello@01.0.0", err: "leading zero"},
		{in: "hello@1.0.0-", err: "pre-release"},
		{in: "hello@1.0.0-01", err: "leading zero"},
		{in: "hello@1.0.0-a..b", err: "pre-release"},
		{in: "hello@1.0.0+", err: "build"},
		{in: "hello@1.0.0+a_b", err: "build"},
		{in: "hello@1.0.0@2", err: "not a number"},
		{in: "@1.0.0", err: "module name is empty"},
		{in: "Hello@1.0.0", err: "must start with a lowercase"},
		{in: "-hello@1.0.0", err: "must start with a lowercase"},
		{in: "hel lo@1.0.0", err: "contains ' '"},
		{in: "hel/lo@1.0.0", err: "contains '/'"},
		{in: strings.Repeat("a", 64) + "@1.0.0", err: "limit is 63"},
		{in: "sha256:xyz", err: "64 lowercase hex"},
		{in: "sha256:" + strings.ToUpper(hex), err: "64 lowercase hex"},
		{in: "sha256:" + hex + "0", err: "64 lowercase hex"},
		{in: "sha512:" + hex, err: "has no version"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, version, digest, err := ParseModuleRef(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseModuleRef(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				if name != "" || version != "" || digest != "" {
					t.Errorf("ParseModuleRef(%q) returned values with its error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseModuleRef(%q): %v", tt.in, err)
			}
			if name != tt.name || version != tt.version || digest != tt.digest {
				t.Errorf("ParseModuleRef(%q) = %q, %q, %q; want %q, %q, %q", tt.in, name, version, digest, tt.name, tt.version, tt.digest)
			}
		})
	}
}
