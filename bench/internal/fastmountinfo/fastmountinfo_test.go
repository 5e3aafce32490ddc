package fastmountinfo

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

const table = `21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 21 0:40 / /var/lib/kubelet rw shared:2 - tmpfs tmpfs rw
31 30 7:3 / /var/lib/kubelet/plugins/flexblock/loop/mounts/loop3 rw,relatime shared:3 - ext4 /dev/loop3 rw
32 30 7:3 / /var/lib/kubelet/pods/a/volumes/flexblock~loop/data rw,relatime shared:3 - ext4 /dev/loop3 rw
33 30 7:3 /sub /var/lib/kubelet/pods/b/volumes/flexblock~loop/data rw,relatime shared:3 - ext4 /dev/loop3 rw
34 30 0:41 / /mnt/with\040space rw - tmpfs none rw
35 30 7:3 / /var/lib/kubelet/pods/c/volumes/flexblock~loop/data rw,relatime - ext4 /dev/loop3 rw
36 35 0:42 / /var/lib/kubelet/pods/c/volumes/flexblock~loop/data rw - tmpfs stacked rw
`

func TestMatchesLibrary(t *testing.T) {
	for _, path := range []string{"/", "/mnt/with space", "/var/lib/kubelet/pods/c/volumes/flexblock~loop/data", "/nowhere",
		"/var/lib/kubelet/plugins/flexblock/loop/mounts/loop3"} {
		got, err := Lookup(strings.NewReader(table), path)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := mountinfo.GetMountsFromReader(strings.NewReader(table), mountinfo.SingleEntryFilter(path))
		// The last match is the visible mount: the library's filter stops
		// at the first, so compare with a full scan.
		all2, _ := mountinfo.GetMountsFromReader(strings.NewReader(table), func(i *mountinfo.Info) (bool, bool) { return i.Mountpoint != path, false })
		var want *mountinfo.Info
		if len(all2) > 0 {
			want = all2[len(all2)-1]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Lookup(%q) = %+v, want %+v (first-match filter gives %d)", path, got, want, len(all))
		}
	}
	g, _ := Lookup(strings.NewReader(table), "/var/lib/kubelet/plugins/flexblock/loop/mounts/loop3")
	users, err := Users(strings.NewReader(table), g)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, fmt.Sprint(u.ID))
	}
	if strings.Join(names, ",") != "32,35" {
		t.Fatalf("users = %v, want 32,35", names)
	}
}

func TestEscape(t *testing.T) {
	if got := string(Escape("a b\\c\td\ne")); got != `a\040b\134c\011d\012e` {
		t.Fatal(got)
	}
}
