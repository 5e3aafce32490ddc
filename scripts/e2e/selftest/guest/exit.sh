#!/bin/bash
# run.sh passes the guest script's exit code through, even after output
# without a final newline.
printf 'exit code %s follows, no newline' "$1"
exit "$1"
