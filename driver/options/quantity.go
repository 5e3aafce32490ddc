package options

import (
	"math/big"
	"strings"
)

// quantityFix says how Kubernetes spells sizes; it is the fix of every
// quantity error, so a user who wrote "10g" or "10GB" learns both spellings.
const quantityFix = `write a Kubernetes quantity: a number with a decimal suffix k, M, G, T, P, E (powers of 1000: 10G = 10000000000 bytes) or a binary suffix Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024: 10Gi = 10737418240 bytes), or an exponent such as 1e9`

// Suffixes of resource.Quantity: binary SI, then decimal SI (with "m",
// milli, which only matters because Kubernetes rounds a fraction of a byte up).
var binarySuffix = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
var decimalSuffix = map[string]int{"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

// maxExponent bounds an "e" exponent so that a hostile "1e999999999" cannot
// make the exact arithmetic below allocate; anything above 10^19 overflows
// int64 anyway.
const maxExponent = 64

// ParseQuantity reads a size in bytes exactly as Kubernetes reads a
// resource.Quantity and takes its Value(): a sign, digits with an optional
// fraction, then a binary suffix (Ki..Ei), a decimal suffix (m, k..E) or a
// decimal exponent (e3, E-2); a fractional byte count is rounded up, as
// Quantity.Value() does. Negative values and values over int64 are refused.
func ParseQuantity(field, v string) (int64, error) {
	num, suffix, ok := splitQuantity(v)
	if !ok {
		return 0, Errorf(field, quantityFix+hintFor(v), "is %q, not a Kubernetes quantity", printable(v))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, Errorf(field, quantityFix, "is %q, not a Kubernetes quantity", printable(v))
	}
	if r.Sign() < 0 {
		return 0, Errorf(field, "give a size of zero or more", "is %q, a negative size", printable(v))
	}
	scale, ok := suffixScale(suffix)
	if !ok {
		return 0, Errorf(field, quantityFix+hintFor(v), "is %q: %q is not a Kubernetes quantity suffix", printable(v), printable(suffix))
	}
	r.Mul(r, scale)
	n := ceil(r)
	if !n.IsInt64() {
		return 0, Errorf(field, "use a size below 8Ei", "is %q, which does not fit in 64 bits", printable(v))
	}
	return n.Int64(), nil
}

// splitQuantity cuts v into its signed number and its suffix, following
// the grammar of resource.Quantity: <sign>? (<digits> | <digits>.<digits>? | .<digits>).
func splitQuantity(v string) (num, suffix string, ok bool) {
	if len(v) == 0 || len(v) > 64 {
		return "", "", false
	}
	i := 0
	if v[0] == '+' || v[0] == '-' {
		i++
	}
	start := i
	digits := 0
	for i < len(v) && isDigit(v[i]) {
		i, digits = i+1, digits+1
	}
	if i < len(v) && v[i] == '.' {
		i++
		for i < len(v) && isDigit(v[i]) {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 || i == start {
		return "", "", false
	}
	num = v[:i]
	if strings.HasSuffix(num, ".") {
		num += "0" // "5." is a quantity; big.Rat wants a digit after the point
	}
	return num, v[i:], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// suffixScale returns the factor a suffix stands for.
func suffixScale(s string) (*big.Rat, bool) {
	if shift, ok := binarySuffix[s]; ok {
		return new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)), true
	}
	exp, ok := decimalSuffix[s]
	if !ok && len(s) > 1 && (s[0] == 'e' || s[0] == 'E') {
		exp, ok = exponent(s[1:])
	}
	if !ok {
		return nil, false
	}
	return pow10(exp), true
}

// exponent reads the signed integer after "e"/"E".
func exponent(s string) (int, bool) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > maxExponent {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func pow10(exp int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
	if exp < 0 {
		return new(big.Rat).SetFrac(big.NewInt(1), p)
	}
	return new(big.Rat).SetInt(p)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// ceil rounds a non-negative rational up, as Quantity.Value() rounds up.
func ceil(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// hintFor names the likely intended spellings of a common mistake: a
// lower-case unit ("10g"), a trailing B ("10GB") or a space ("10 G").
func hintFor(v string) string {
	num, suffix, ok := splitQuantity(strings.ReplaceAll(v, " ", ""))
	if !ok {
		return ""
	}
	u := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(suffix, "B"), "b"))
	u = strings.TrimSuffix(u, "I")
	if len(u) != 1 || !strings.Contains("KMGTPE", u) {
		return ""
	}
	dec := u
	if dec == "K" {
		dec = "k"
	}
	return "; for \"" + printable(v) + "\" write " + num + dec + " or " + num + u + "i"
}
