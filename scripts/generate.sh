#!/usr/bin/env bash
# Regenerates the code under proto/gen from the contracts under proto/herald.
#
# Usage: scripts/generate.sh [--check]
#
# Builds the pinned buf and protoc plugins (scripts/tools.sh), deletes the generated code, runs
# buf generate and tidies the proto module. With --check it then fails, listing the files, if
# anything under proto/ differs from what git has: the committed code must be what the
# committed contracts generate.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

check=false
case "${1:-}" in
	"") ;;
	--check) check=true ;;
	*)
		echo "usage: scripts/generate.sh [--check]" >&2
		exit 2
		;;
esac

scripts/tools.sh buf protoc
# buf finds the local plugins on PATH; put the pinned ones first.
export PATH="${root}/bin:${PATH}"

rm -rf proto/gen/go
# proto/gen/openapi also holds the hand-written package that embeds the spec: keep it.
if [[ -d proto/gen/openapi ]]; then
	find proto/gen/openapi -type f -name '*.json' -delete
fi

bin/buf generate
go -C proto mod tidy

if [[ "${check}" == true ]]; then
	changes="$(git status --porcelain --untracked-files=all -- proto)"
	if [[ -n "${changes}" ]]; then
		echo "generate.sh: generated code is out of date; run scripts/generate.sh and commit:" >&2
		echo "${changes}" >&2
		exit 1
	fi
	echo "generate.sh: generated code is up to date"
fi
