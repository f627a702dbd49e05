package watcher

import (
	"path"
	"strings"
)

// Filter decides which files are eligible (SPEC section 4): not hidden, not a
// temporary name, not system clutter, and matching the configured include
// and exclude globs. Ineligible files are left where they are.
type Filter struct {
	// Include, when not empty, admits only files whose name or slash-separated
	// path relative to the inbox matches one of these globs.
	Include []string
	// Exclude skips files whose name or relative path matches one of these globs.
	Exclude []string
}

// SkipDir reports whether a folder (by name) is never entered: hidden
// folders and Synology's @eaDir.
func SkipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "@eaDir" || name == "#recycle" || name == "$RECYCLE.BIN"
}

// builtIn reports whether a file name is ignored whatever the configuration.
func builtIn(name string) bool {
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(name, "."), // hidden, and .DS_Store, ._resource forks
		strings.HasPrefix(name, "~"), // ~file, ~$office-lock
		strings.HasSuffix(lower, ".tmp"),
		strings.HasSuffix(lower, ".part"),
		strings.HasSuffix(lower, ".crdownload"),
		lower == "thumbs.db",
		lower == "desktop.ini":
		return true
	}
	return false
}

// Eligible reports whether the file at rel (relative to its inbox, with the
// OS separator) is one the watcher takes. Folders on the way must have
// passed SkipDir.
func (f Filter) Eligible(rel string) bool {
	rel = strings.ReplaceAll(rel, "\\", "/")
	name := path.Base(rel)
	for _, dir := range strings.Split(path.Dir(rel), "/") {
		if dir != "." && SkipDir(dir) {
			return false
		}
	}
	if builtIn(name) {
		return false
	}
	for _, g := range f.Exclude {
		if match(g, name, rel) {
			return false
		}
	}
	if len(f.Include) == 0 {
		return true
	}
	for _, g := range f.Include {
		if match(g, name, rel) {
			return true
		}
	}
	return false
}

// match tries a glob on the name and on the relative path, case-insensitively
// (file servers are often Windows shares).
func match(glob, name, rel string) bool {
	g := strings.ToLower(glob)
	if ok, _ := path.Match(g, strings.ToLower(name)); ok {
		return true
	}
	ok, _ := path.Match(g, strings.ToLower(rel))
	return ok
}
