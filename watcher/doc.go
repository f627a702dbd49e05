// Package watcher will find complete, eligible files in the hot folders
// (issue 5): recursive fsnotify watches, a start-up scan and periodic rescans,
// polling for network shares, settle-time and end-marker checks, and the
// SHA-256 identity that keeps one content from being queued twice. SPEC
// section 4 states its rules.
package watcher
