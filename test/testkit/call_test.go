package testkit

import "testing"

// Decode reads what kubelet reads: one JSON object with a status, and
// nothing else (a second object, trailing bytes or a stray line on stderr
// make the answer unparsable for kubelet, so for the kit too).
func TestDecodeOneObject(t *testing.T) {
	for _, tc := range []struct {
		out, status string
	}{
		{`{"status":"Success","capabilities":{"attach":false}}` + "\n", "Success"},
		{`{"status":"Failure","message":"m"}`, "Failure"},
		{`{"status":"Success"}{"status":"Success"}`, Unparsable},
		{`{"status":"Success"}` + "\nwarning\n", Unparsable},
		{`{"message":"no status"}`, Unparsable},
		{``, Unparsable},
	} {
		if a := Decode(tc.out); a.Status != tc.status {
			t.Errorf("Decode(%q).Status = %q, want %q", tc.out, a.Status, tc.status)
		}
	}
	if a := Decode(`{"status":"Success","capabilities":{"attach":true}}`); !a.Capabilities["attach"] {
		t.Errorf("capabilities not decoded: %+v", a)
	}
}
