package edge

import (
	"errors"
	"testing"
)

func TestNormalizeSignal(t *testing.T) {
	for in, want := range map[string]string{
		"SIGHUP": "SIGHUP", "hup": "SIGHUP", " term ": "SIGTERM", "9": "SIGKILL", "15": "SIGTERM",
		"10": "10", "RTMIN+3": "SIGRTMIN+3",
	} {
		if got, err := normalizeSignal(in); err != nil || got != want {
			t.Errorf("normalizeSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIG HUP", "hup;rm"} {
		if got, err := normalizeSignal(in); !errors.Is(err, errSignalRefused) {
			t.Errorf("normalizeSignal(%q) = %q, %v; want a refusal", in, got, err)
		}
	}
}
