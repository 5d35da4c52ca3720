package template

import (
	"regexp"
	"strings"
)

// semver is a parsed MAJOR.MINOR.PATCH[-PRERELEASE] version. Numbers are
// kept as digit strings so that no size overflows.
type semver struct {
	major, minor, patch string
	pre                 []string // prerelease identifiers; nil for a release
}

var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)` +
	`(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$`)

func parseSemver(s string) (semver, bool) {
	if len(s) > MaxVersionLength {
		return semver{}, false
	}
	m := semverRE.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	v := semver{major: m[1], minor: m[2], patch: m[3]}
	if m[4] != "" {
		v.pre = strings.Split(m[4], ".")
	}
	return v, true
}

// compareSemver orders versions by semver precedence; a version that does
// not parse sorts before every one that does, and among themselves by text.
func compareSemver(a, b string) int {
	va, oka := parseSemver(a)
	vb, okb := parseSemver(b)
	switch {
	case !oka && !okb:
		return strings.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	if c := compareNumeric(va.major, vb.major); c != 0 {
		return c
	}
	if c := compareNumeric(va.minor, vb.minor); c != 0 {
		return c
	}
	if c := compareNumeric(va.patch, vb.patch); c != 0 {
		return c
	}
	switch {
	case va.pre == nil && vb.pre == nil:
		return 0
	case va.pre == nil:
		return 1 // a release ranks above its prereleases
	case vb.pre == nil:
		return -1
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		x, y := va.pre[i], vb.pre[i]
		xn, yn := isDigits(x), isDigits(y)
		var c int
		switch {
		case xn && yn:
			c = compareNumeric(x, y)
		case xn:
			c = -1 // numeric identifiers rank below alphanumeric ones
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return len(va.pre) - len(vb.pre)
}

// compareNumeric compares decimal digit strings without leading zeros.
func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
