// Command mountstub stands in for mount(8) and umount(8) in the no-op-tools
// benchmark. It does the least that keeps the mount table truthful, one
// syscall, so the driver takes exactly the code path it takes with the real
// tools (an unmount finds the bind, then finds the global mount unused):
//
//	mount -t FSTYPE [-o OPTS] SOURCE TARGET  -> a 1 MiB tmpfs named SOURCE at TARGET
//	mount [-c] -o bind[,ro] SOURCE TARGET    -> a bind mount (remounted ro if asked)
//	mount [-c] -o remount,bind,ro TARGET     -> the bind at TARGET made read-only
//	umount [-l] TARGET                       -> umount2(TARGET)
//
// It is installed under both names; argv[0] picks the behaviour.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	var err error
	switch filepath.Base(os.Args[0]) {
	case "umount":
		err = umount(os.Args[1:])
	default:
		err = mount(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
		os.Exit(32)
	}
}

func mount(args []string) error {
	var fsType, opts string
	var pos []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-t" && i+1 < len(args):
			i++
			fsType = args[i]
		case a == "-o" && i+1 < len(args):
			i++
			opts = args[i]
		case strings.HasPrefix(a, "-"):
		default:
			pos = append(pos, a)
		}
	}
	o := map[string]bool{}
	for _, x := range strings.Split(opts, ",") {
		o[x] = true
	}
	if o["remount"] && len(pos) == 1 {
		return unix.Mount("", pos[0], "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	if len(pos) != 2 {
		return fmt.Errorf("want SOURCE TARGET, got %q", pos)
	}
	src, dst := pos[0], pos[1]
	if o["bind"] {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		if o["ro"] {
			return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		return nil
	}
	_ = fsType // the device is never touched: a tmpfs named after it stands in
	var flags uintptr
	if o["ro"] {
		flags |= unix.MS_RDONLY
	}
	return unix.Mount(src, dst, "tmpfs", flags, "size=1m")
}

func umount(args []string) error {
	var pos []string
	flags := 0
	for _, a := range args {
		switch {
		case a == "-l":
			flags |= unix.MNT_DETACH
		case strings.HasPrefix(a, "-"):
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 1 {
		return fmt.Errorf("want TARGET, got %q", pos)
	}
	return unix.Unmount(pos[0], flags)
}
