package options

import (
	"errors"
	"strings"
	"testing"

	"github.com/flexblock/flexblock/driver/errkind"
)

// Values as resource.MustParse(s).Value() gives them (k8s.io/apimachinery).
func TestParseQuantity(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1073741824", 1073741824},
		{"10G", 10000000000},
		{"10Gi", 10737418240},
		{"1.5Gi", 1610612736},
		{"100M", 100000000},
		{"100Mi", 104857600},
		{"1e3", 1000},
		{"1E9", 1000000000},
		{"1e+3", 1000},
		{"0.5Ki", 512},
		{"1k", 1000},
		{"1Ki", 1024},
		{"2T", 2000000000000},
		{"1Ti", 1 << 40},
		{"1P", 1000000000000000},
		{"1Pi", 1 << 50},
		{"1E", 1000000000000000000},
		{"1Ei", 1 << 60},
		{"7Ei", 7 << 60},
		{"+5M", 5000000},
		{".5k", 500},
		{"5.", 5},
		{"1.5", 2},     // a fraction of a byte rounds up, as Value() does
		{"0.1Ki", 103}, // 102.4 rounds up
		{"100m", 1},    // milli: 0.1 byte rounds up
		{"1e-3", 1},
		{"9223372036854775807", 9223372036854775807},
	}
	for _, tc := range good {
		got, err := ParseQuantity("size", tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseQuantity(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"10g", "write 10G or 10Gi"},
		{"10GB", "write 10G or 10Gi"},
		{"10 G", "write 10G or 10Gi"},
		{"10gi", "write 10G or 10Gi"},
		{"10K", "write 10k or 10Ki"},
		{"-1Gi", "negative"},
		{"-0.5", "negative"},
		{"", "not a Kubernetes quantity"},
		{"G", "not a Kubernetes quantity"},
		{"1.2.3", "not a Kubernetes quantity"},
		{"1e", "not a Kubernetes quantity suffix"},
		{"1e999999999", "not a Kubernetes quantity suffix"},
		{"8Ei", "64 bits"},
		{"9223372036854775808", "64 bits"},
		{"1e19", "64 bits"},
		{"10 ", "not a Kubernetes quantity suffix"},
		{" 10", "not a Kubernetes quantity"},
		{"0x10", "not a Kubernetes quantity suffix"},
	}
	for _, tc := range bad {
		_, err := ParseQuantity("size", tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `option "size"`) {
			t.Errorf("ParseQuantity(%q) = %v, want an error about size containing %q", tc.in, err, tc.want)
			continue
		}
		if !errors.Is(err, errkind.Invalid) {
			t.Errorf("ParseQuantity(%q): error is not errkind.Invalid", tc.in)
		}
	}
}
