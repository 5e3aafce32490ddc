package state

import "path/filepath"

// Layout names every file and directory flexblock keeps on a node, in one
// place, so the lifecycle, the backends, doctor and uninstall agree.
type Layout struct {
	// Dir is the state dir (tmpfs: it vanishes with a reboot, as the kernel
	// mappings and sessions it describes do).
	Dir string
	// RecordsDir is persistent: markers of the on-disk open-iscsi records
	// flexblock makes, which outlive a reboot.
	RecordsDir string
}

// Volumes holds one record per volume, a subdirectory per backend.
func (l Layout) Volumes() string { return filepath.Join(l.Dir, "volumes") }

// Locks holds the flock files (never removed).
func (l Layout) Locks() string { return filepath.Join(l.Dir, "locks") }

// Keys holds the short-lived 0600 key files handed to tools.
func (l Layout) Keys() string { return filepath.Join(l.Dir, "keys") }

// Quarantine holds records that could not be read or failed validation,
// set aside so one bad file never blocks the node.
func (l Layout) Quarantine() string { return filepath.Join(l.Dir, "quarantine") }

// Work is the empty working directory external tools run in, so a relative
// path in an argument can only name nothing.
func (l Layout) Work() string { return filepath.Join(l.Dir, "work") }

// ISCSISessions holds the markers of iSCSI sessions flexblock logged in.
func (l Layout) ISCSISessions() string { return filepath.Join(l.Dir, "iscsi") }

// HashKey is the node-local random key (0600, made once) that credentials
// are hashed with (HMAC-SHA256) where a record must tell whether a later
// call brings the same ones, so no record ever holds a secret. It lives
// as long as the records that hold such hashes.
func (l Layout) HashKey() string { return filepath.Join(l.Dir, "hash.key") }

// ISCSIRecords holds the markers of node/discovery/iface records.
func (l Layout) ISCSIRecords() string { return l.RecordsDir }
