# Passes: the runner counts it.
assert_eq "$((1 + 1))" 2 "arithmetic"
note "lib.sh loaded for scenario $SCENARIO"
