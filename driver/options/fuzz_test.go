package options

import (
	"strings"
	"testing"
)

// FuzzParse: whatever kubelet (or an attacker) sends, parsing never panics,
// and anything it accepts is safe to put on a command line.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"kubernetes.io/fsType":"ext4","mountOptions":"noatime","mkfsOptions":"-L x"}`,
		`{"kubernetes.io/secret/key":"QUJD","kubernetes.io/readwrite":"ro"}`,
		`{"mountOptions":"a,b=c,d"}`, `{"a":1}`, `[`, `{"fsType":"xfs;reboot"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		o, err := Decode(in)
		if err != nil {
			return
		}
		c, err := ParseCommon(o, "ext4", nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "option ") {
				t.Fatalf("error does not name the option: %v", err)
			}
			return
		}
		for _, m := range c.MountOptions {
			if strings.ContainsAny(m, ", ;|&$`\"'\\\n") {
				t.Fatalf("unsafe mount option accepted: %q", m)
			}
		}
		for _, m := range c.MkfsOptions {
			if strings.ContainsAny(m, "/ ;|&$`\"'\\\n") {
				t.Fatalf("unsafe mkfs option accepted: %q", m)
			}
		}
		switch c.FSType {
		case "ext4", "ext3", "xfs", "btrfs":
		default:
			t.Fatalf("fsType %q accepted", c.FSType)
		}
	})
}
