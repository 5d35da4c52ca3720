package api

// RouteAccess returns what a route pattern needs: its permission, or the
// public group it belongs to.
func RouteAccess(pattern string) (perm, group string, ok bool) {
	a, ok := routeAccess[pattern]
	return a.perm, string(a.group), ok
}

// RoutePatterns lists the patterns of routeAccess.
func RoutePatterns() []string {
	var out []string
	for p := range routeAccess {
		out = append(out, p)
	}
	return out
}
