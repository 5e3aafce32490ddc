#!/usr/bin/env bash
# Host side of the reboot test: two boots of the VM sharing one disk image.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
disk=$(mktemp /var/tmp/flexblock-reboot.XXXXXX.img)
trap 'rm -f "$disk"' EXIT
truncate -s 512M "$disk"
export VM_DISK=$disk VM_SETUP=0 VM_TIMEOUT=${VM_TIMEOUT_REBOOT:-300}
echo "=== reboot: boot 1"
"$here/../vm/run.sh" "$here/reboot-guest.sh" 1
echo "=== reboot: boot 2"
"$here/../vm/run.sh" "$here/reboot-guest.sh" 2
