package options

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		in, wantErr string
	}{
		{`{"a":"b"}`, ""},
		{`{}`, ""},
		{`null`, "got null"},
		{`[]`, "not a JSON object"},
		{`{"a":1}`, `"a" must be a string`},
		{`{"a":true}`, "got a boolean"},
		{`{"a":null}`, "got null"},
		{`{"a":{"b":"c"}}`, "got an object"},
		{`{"a":["b"]}`, "got an array"},
		{`{"a":"b"}x`, "trailing"},
		{`{"fsType":"xfs","fsType":"ext4"}`, `"fsType" is given twice`},
		{`{"a":"b","c":"d","a":"b"}`, `"a" is given twice`},
		{`{"a":"b"} {}`, "trailing"},
		{`{"a":"b",}`, "not a JSON object"},
		{`{"a" "b"}`, "not a JSON object"},
		{`{"a":"b"`, "not a JSON object"},
		{`{"a b":"c"}`, "not a valid option name"},
		{`{"a;rm":"c"}`, "not a valid option name"},
		{`{"":"c"}`, "not a valid option name"},
		{`{"a":"` + strings.Repeat("x", maxValueBytes+1) + `"}`, "bytes long"},
		{strings.Repeat(" ", maxJSONBytes+1), "allowed"},
	}
	for _, tc := range cases {
		_, err := Decode(tc.in)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Decode(%.40q) = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseCommon(t *testing.T) {
	cases := []struct {
		name    string
		o       Options
		wantErr string
		check   func(*Common) bool
	}{
		{"defaults", Options{}, "", func(c *Common) bool { return c.FSType == "ext4" && !c.ReadOnly && c.FSGroup == nil }},
		{"kubelet fsType", Options{KeyFSType: "xfs"}, "", func(c *Common) bool { return c.FSType == "xfs" }},
		{"user fsType wins", Options{KeyFSType: "xfs", "fsType": "btrfs"}, "", func(c *Common) bool { return c.FSType == "btrfs" }},
		{"bad fsType", Options{KeyFSType: "ntfs"}, `"kubernetes.io/fsType" is "ntfs"`, nil},
		{"fsType injection", Options{"fsType": "ext4 -o x"}, `"fsType"`, nil},
		{"ro", Options{KeyReadWrite: "ro"}, "", func(c *Common) bool { return c.ReadOnly }},
		{"readOnly option", Options{KeyReadWrite: "rw", "readOnly": "true"}, "", func(c *Common) bool { return c.ReadOnly }},
		{"bad readwrite", Options{KeyReadWrite: "rx"}, "kubernetes.io/readwrite", nil},
		{"bad readOnly", Options{"readOnly": "yes please"}, `"readOnly"`, nil},
		{"fsGroup new key", Options{KeyFSGroup: "2000"}, "", func(c *Common) bool { return *c.FSGroup == 2000 }},
		{"fsGroup old key", Options{KeyFSGroupOld: "3000"}, "", func(c *Common) bool { return *c.FSGroup == 3000 }},
		{"bad fsGroup", Options{KeyFSGroup: "-1"}, "group ID", nil},
		{"fsGroup garbage", Options{KeyFSGroupOld: "abc"}, "group ID", nil},
		{"secret decoded", Options{SecretPrefix + "key": b64("AQB==")}, "", func(c *Common) bool { return c.Secrets["key"] == "AQB==" }},
		{"secret trailing newline allowed", Options{SecretPrefix + "key": b64("k\n")}, "", func(c *Common) bool { return c.Secrets["key"] == "k\n" }},
		{"secret bad base64", Options{SecretPrefix + "key": "!!!"}, "not valid base64", nil},
		{"secret NUL", Options{SecretPrefix + "key": b64("a\x00b")}, "NUL", nil},
		{"secret bad key name", Options{SecretPrefix + "../x": b64("a")}, "characters that are not allowed", nil},
		{"mount options", Options{"mountOptions": "noatime, discard"}, "", func(c *Common) bool { return strings.Join(c.MountOptions, ",") == "noatime,discard" }},
		{"mount option bind", Options{"mountOptions": "noatime,bind"}, `"mountOptions" item "bind" is not an allowed mount option for ext4`, nil},
		{"mount option remount", Options{"mountOptions": "remount"}, `"remount"`, nil},
		{"mount option rw", Options{"mountOptions": "rw"}, `"rw"`, nil},
		{"mount option x-", Options{"mountOptions": "X-mount.mkdir"}, `"X-mount.mkdir"`, nil},
		{"mount option context", Options{"mountOptions": "context=system_u"}, `"context=system_u"`, nil},
		{"mount option injection", Options{"mountOptions": "noatime;rm -rf /"}, "mountOptions", nil},
		{"mount option space", Options{"mountOptions": "a b"}, "mountOptions", nil},
		{"mount option dash", Options{"mountOptions": "-rf"}, "mountOptions", nil},
		{"mount option empty item", Options{"mountOptions": "noatime,,nodev"}, "empty item", nil},
		{"mount errors=panic", Options{"mountOptions": "errors=panic"}, `item "errors=panic" has a value that is not one of remount-ro, continue`, nil},
		{"mount defaults", Options{"mountOptions": "defaults"}, `item "defaults"`, nil},
		{"mount journal_path", Options{"mountOptions": "journal_path=/x"}, `"journal_path=/x"`, nil},
		{"mount duplicate", Options{"mountOptions": "noatime,noatime"}, "given twice", nil},
		{"mount option per fs", Options{"fsType": "xfs", "mountOptions": "errors=remount-ro"}, "not an allowed mount option for xfs", nil},
		{"mount option xfs", Options{"fsType": "xfs", "mountOptions": "inode64,logbufs=8"}, "", func(c *Common) bool { return len(c.MountOptions) == 2 }},
		{"mkfs options", Options{"mkfsOptions": "-L data -i 8192"}, "", func(c *Common) bool { return len(c.MkfsOptions) == 4 }},
		{"mkfs path", Options{"mkfsOptions": "-L /dev/sda"}, `"mkfsOptions" item "-L /dev/sda" names a path`, nil},
		{"mkfs positional", Options{"mkfsOptions": "sda"}, `item "sda" is not a flag`, nil},
		{"mkfs two values", Options{"mkfsOptions": "-L a b"}, `item "b" is not a flag`, nil},
		{"mkfs -d", Options{"mkfsOptions": "-d x"}, `"mkfsOptions" item "-d" is not an allowed flag for ext4`, nil},
		{"mkfs -detc", Options{"mkfsOptions": "-detc"}, `item "-d" is not an allowed flag`, nil},
		{"mkfs -qd etc", Options{"mkfsOptions": "-qd etc"}, `item "-d" is not an allowed flag`, nil},
		{"mkfs shell", Options{"mkfsOptions": "-L $(reboot)"}, `"mkfsOptions" item "-L $(reboot)"`, nil},
		{"mkfs per fs", Options{"fsType": "xfs", "mkfsOptions": "-E stride=4"}, `item "-E" is not an allowed flag for xfs`, nil},
		{"mkfs btrfs rootdir", Options{"fsType": "btrfs", "mkfsOptions": "--rootdir=/etc"}, `item "--rootdir" is not an allowed flag for btrfs`, nil},
		{"mkfs btrfs label", Options{"fsType": "btrfs", "mkfsOptions": "--label=data -d dup"}, "", func(c *Common) bool { return len(c.MkfsOptions) == 3 }},
		{"case variant of a kubelet key", Options{"kubernetes.io/FSType": "xfs"}, `differs only in case from "kubernetes.io/fsType"`, nil},
		{"case variant of a user key", Options{"FsType": "xfs"}, `differs only in case from "fsType"`, nil},
		{"unknown option", Options{"imgae": "x"}, `"imgae" is not a known option`, nil},
		{"pod uid", Options{KeyPodUID: "../../etc"}, "kubernetes.io/pod.uid", nil},
		{"volume name", Options{KeyVolumeName: "pv-1"}, "", func(c *Common) bool { return c.VolumeName == "pv-1" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCommon(tc.o, "ext4", []string{"image"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected %+v", c)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	for _, v := range []string{"", "-rf", ".hidden", "..", "a/b", "a;b", "a b", "ä", strings.Repeat("a", 129)} {
		if Name("image", v, 128) == nil {
			t.Errorf("Name accepted %q", v)
		}
	}
	for _, v := range []string{"img", "img-1.2_x", "A9"} {
		if err := Name("image", v, 128); err != nil {
			t.Errorf("Name(%q) = %v", v, err)
		}
	}
	hp := map[string]string{"10.0.0.1": "10.0.0.1:6789", "mon:3300": "mon:3300", "[fd00::1]:6789": "[fd00::1]:6789", "fd00::1": "", "a..b": "", "h:0": "", "h:99999": "", "h;rm": "", "": ""}
	for in, want := range hp {
		got, err := HostPort("monitors", in, 6789)
		if want == "" && err == nil || want != "" && got != want {
			t.Errorf("HostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := OneOf("fencing", "maybe", "watchers", "watchers", "none"); err == nil {
		t.Error("OneOf accepted maybe")
	}
	if v, _ := OneOf("fencing", "", "watchers", "watchers", "none"); v != "watchers" {
		t.Error("OneOf default")
	}
}

func TestErrorNamesFieldAndFix(t *testing.T) {
	err := Errorf("pool", "use letters", "is %q", "x")
	if err.Error() != `option "pool" is "x": use letters` {
		t.Fatal(err)
	}
}
