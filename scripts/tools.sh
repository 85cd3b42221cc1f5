#!/usr/bin/env bash
# Builds the pinned tool binaries into bin/.
#
# Usage: scripts/tools.sh [name...]
#
# Each name is a directory under tools/pinned/ (buf, protoc, golangci-lint, actionlint); with no
# name every one is built. Each directory is its own Go module whose `tool` directives pin the
# tools' versions, so their dependency graphs never mix with each other or with the workspace.
# A binary that is already newer than its module's go.mod and go.sum is left as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pinned="${root}/tools/pinned"
bin="${root}/bin"

# tools_of prints the package paths named by the tool directives of a go.mod.
tools_of() {
	awk '
		/^tool[ \t]*\($/ { block = 1; next }
		block && /^\)/ { block = 0; next }
		block && NF { print $1; next }
		/^tool[ \t]+[^(]/ { print $2 }
	' "$1"
}

# up_to_date reports whether every binary of a pinned module is newer than its go.mod and go.sum.
up_to_date() {
	local dir="$1" pkg exe
	while read -r pkg; do
		exe="${bin}/${pkg##*/}"
		[[ -x "${exe}" && "${exe}" -nt "${dir}/go.mod" && "${exe}" -nt "${dir}/go.sum" ]] || return 1
	done < <(tools_of "${dir}/go.mod")
}

build() {
	local name="$1" dir="${pinned}/$1" started
	local -a pkgs
	if [[ ! -f "${dir}/go.mod" ]]; then
		echo "tools.sh: unknown tool ${name} (no ${dir#"${root}"/}/go.mod)" >&2
		return 1
	fi
	if up_to_date "${dir}"; then
		echo "tools.sh: ${name} is up to date"
		return 0
	fi
	started=${SECONDS}
	mapfile -t pkgs < <(tools_of "${dir}/go.mod")
	# GOWORK=off: the pinned modules are outside go.work and must resolve only their own go.sum.
	GOWORK=off GOFLAGS=-mod=readonly go -C "${dir}" build -trimpath -o "${bin}/" "${pkgs[@]}"
	echo "tools.sh: built ${name} (${pkgs[*]##*/}) in $((SECONDS - started))s"
}

mkdir -p "${bin}"
if [[ $# -eq 0 ]]; then
	for dir in "${pinned}"/*/; do
		dir="${dir%/}"
		set -- "$@" "${dir##*/}"
	done
fi
for name in "$@"; do
	build "${name}"
done
