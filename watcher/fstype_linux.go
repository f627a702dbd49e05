//go:build linux

package watcher

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Magic numbers of file systems where inotify sees no changes made by other
// machines (statfs(2)).
var networkFS = map[int64]string{
	0x6969:     "NFS",
	0x517B:     "SMB",
	0xFF534D42: "CIFS",
	0xFE534D42: "SMB2",
	0x65735546: "FUSE",
	0x01021997: "9P",
}

// remoteFS returns the name of the network file system dir is on, or "".
func remoteFS(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return ""
	}
	return networkFS[int64(st.Type)]
}

// ctimeOf is the file's status-change time: set by the kernel on every
// write, rename and time change, so a copy tool that preserves the source's
// mtime cannot make a file still being written look old.
func ctimeOf(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return time.Time{}
}
