//go:build !linux

package watcher

import (
	"io/fs"
	"time"
)

// remoteFS is not known off Linux: "auto" watches with events there.
func remoteFS(string) string { return "" }

// ctimeOf is not read off Linux: mtime alone decides there.
func ctimeOf(fs.FileInfo) time.Time { return time.Time{} }
