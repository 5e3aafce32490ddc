#!/usr/bin/env bash
# Installs what building and testing flexblock on the host needs, on a
# fresh Debian machine: the filesystem tools the real loop-device tests
# drive, and a Go toolchain new enough for go.mod. Idempotent and quiet
# when everything is already there.
set -euo pipefail

need_go="1.24"
host_pkgs=(e2fsprogs xfsprogs btrfs-progs fdisk util-linux mount kmod jq ca-certificates git make shellcheck)

missing=()
for p in "${host_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

go_ok() {
	command -v go >/dev/null || return 1
	local v
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	[ "$(printf '%s\n%s\n' "$need_go" "$v" | sort -V | head -1)" = "$need_go" ]
}

for d in /usr/local/go/bin "$HOME/go/bin"; do
	[ -d "$d" ] && PATH="$d:$PATH"
done
if ! go_ok; then
	# Debian's golang-go is too old for go.mod; the Go module proxy serves
	# toolchains as modules, which even an old go can download.
	command -v go >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; }
	tc="golang.org/toolchain@v0.0.1-go1.25.14.linux-amd64"
	dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$tc" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	ln -sfn "$dir" /usr/local/go
	PATH="/usr/local/go/bin:$PATH"
	go_ok || { echo "deps: could not get Go >= $need_go" >&2; exit 1; }
fi
echo "deps: $(go version)"
