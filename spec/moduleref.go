package spec

import (
	"errors"
	"fmt"
	"strings"
)

// DigestPrefix starts every module digest: "sha256:" and 64 lowercase hex digits.
const DigestPrefix = "sha256:"

// ParseModuleRef splits a module reference. It is either "name@version",
// with a module name (see ValidModuleName) and a semantic version (see
// ValidVersion), or a digest "sha256:<64 lowercase hex digits>". Exactly one
// of (name, version) and digest is returned non-empty.
func ParseModuleRef(s string) (name, version, digest string, err error) {
	if strings.HasPrefix(s, DigestPrefix) {
		if err := ValidDigest(s); err != nil {
			return "", "", "", err
		}
		return "", "", s, nil
	}
	name, version, ok := strings.Cut(s, "@")
	switch {
	case s == "":
		return "", "", "", errors.New(`module reference is empty: use "name@version" (like "hello@1.0.0") or "sha256:<digest>"`)
	case !ok:
		return "", "", "", fmt.Errorf(`module reference %q has no version: use "name@version" (like "%s@1.0.0") or "sha256:<digest>"`, s, s)
	}
	if err := ValidModuleName(name); err != nil {
		return "", "", "", fmt.Errorf("module reference %q: %w", s, err)
	}
	if err := ValidVersion(version); err != nil {
		return "", "", "", fmt.Errorf("module reference %q: %w", s, err)
	}
	return name, version, "", nil
}

// ValidDigest checks a module digest: "sha256:" and 64 lowercase hex digits.
func ValidDigest(s string) error {
	hex, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return fmt.Errorf("digest %q must start with %q", s, DigestPrefix)
	}
	if len(hex) != 64 || strings.IndexFunc(hex, func(c rune) bool {
		return !('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
	}) >= 0 {
		return fmt.Errorf("digest %q must be %q followed by 64 lowercase hex digits", s, DigestPrefix)
	}
	return nil
}

// ValidModuleName checks a module name: a lowercase letter or digit, then
// up to 62 lowercase letters, digits, '.', '_' or '-'.
func ValidModuleName(s string) error {
	switch {
	case s == "":
		return errors.New("module name is empty")
	case len(s) > 63:
		return fmt.Errorf("module name %q is %d characters long; the limit is 63", s, len(s))
	case !isLowerAlnum(s[0]):
		return fmt.Errorf("module name %q must start with a lowercase letter or a digit", s)
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("module name %q contains %q: use lowercase letters, digits, '.', '_' and '-'", s, rune(c))
		}
	}
	return nil
}

// ValidVersion checks a semantic version (semver.org 2.0.0):
// MAJOR.MINOR.PATCH, numbers without leading zeros, then an optional
// "-prerelease" and an optional "+build". There is no leading "v".
func ValidVersion(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("version %q is not a semantic version (MAJOR.MINOR.PATCH, like 1.4.2): %s", s, why)
	}
	if s == "" {
		return bad("it is empty")
	}
	core, build, hasBuild := strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return bad("it needs three numbers separated by dots")
	}
	for _, n := range nums {
		if !isNumeric(n) {
			return bad(fmt.Sprintf("%q is not a number", n))
		}
		if len(n) > 1 && n[0] == '0' {
			return bad(fmt.Sprintf("%q has a leading zero", n))
		}
	}
	if hasPre {
		for _, id := range strings.Split(pre, ".") {
			if !isSemverIdent(id) {
				return bad(fmt.Sprintf("pre-release identifier %q must be letters, digits and '-'", id))
			}
			if isNumeric(id) && len(id) > 1 && id[0] == '0' {
				return bad(fmt.Sprintf("pre-release identifier %q has a leading zero", id))
			}
		}
	}
	if hasBuild {
		for _, id := range strings.Split(build, ".") {
			if !isSemverIdent(id) {
				return bad(fmt.Sprintf("build identifier %q must be letters, digits and '-'", id))
			}
		}
	}
	return nil
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isSemverIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(c) && !('A' <= c && c <= 'Z') && c != '-' {
			return false
		}
	}
	return true
}
