//go:build linux

package watcher

import "golang.org/x/sys/unix"

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
