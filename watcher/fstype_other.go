//go:build !linux

package watcher

// remoteFS is not known off Linux: "auto" watches with events there.
func remoteFS(string) string { return "" }
