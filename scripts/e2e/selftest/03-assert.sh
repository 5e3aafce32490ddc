# Deliberately broken: a failed assertion.
assert_eq got wanted "deliberate mismatch"
