//go:build !linux

package worker

// renameNoReplace renames src to dst unless dst exists (os.ErrExist), with a
// hard link (which refuses to replace) and a removal.
func renameNoReplace(src, dst string) error { return linkRename(src, dst) }
