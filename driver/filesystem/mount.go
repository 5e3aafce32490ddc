package filesystem

import "strings"

// mountSet is the mount options a volume may ask for on one filesystem.
type mountSet map[string]value

// ParseMount checks a comma-separated list of mount options against this
// filesystem's list. Refused because they are not listed: anything that
// changes what is mounted or where (bind, remount, loop, subvol=, device=,
// logdev=, journal_path=), that lifts the node's safety defaults (suid, dev,
// exec, rw: read-only comes from readOnly), that turns a filesystem error
// into a node crash (errors=panic, fatal_errors=panic), that hides the mount
// options' reset (defaults), or that defeats identity checks (nouuid).
// A name given twice is refused.
func (fs *FS) ParseMount(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	items := strings.Split(v, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	if err := list(strings.Join(items, ","), fs.mount, "mount option for "+fs.Name); err != nil {
		return nil, err
	}
	return items, nil
}
