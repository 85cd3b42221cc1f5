#!/usr/bin/env bash
# test.sh runs the tests of every module of the workspace against a real PostgreSQL and Redis.
#
#   scripts/test.sh [go test flags...]     e.g. scripts/test.sh -run TestImport -race
#
# When HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR are both set (CI service
# containers, docker compose), they are used as they are and nothing is started. Otherwise the
# local stack (scripts/stack.sh) is started or reused, and left running for the next run, except
# in CI (CI=true) when this script started it.
#
# Every module runs even when an earlier one fails; a summary line per module follows, and the
# exit status is non-zero when any module failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started_stack=""
stop_stack() {
	if [[ -n "$started_stack" ]]; then
		bash "$ROOT/scripts/stack.sh" stop || true
	fi
}
trap stop_stack EXIT

if [[ -n "${HERALD_TEST_DATABASE_URL:-}" && -n "${HERALD_TEST_REDIS_ADDR:-}" ]]; then
	echo "test: using PostgreSQL and Redis from HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR"
else
	if [[ -n "${HERALD_TEST_DATABASE_URL:-}${HERALD_TEST_REDIS_ADDR:-}" ]]; then
		echo "test: only one of HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR is set; using the local stack for both" >&2
	fi
	bash "$ROOT/scripts/deps.sh"
	if ! bash "$ROOT/scripts/stack.sh" status >/dev/null 2>&1 && [[ "${CI:-}" == true ]]; then
		started_stack=1
	fi
	bash "$ROOT/scripts/stack.sh" start
	stack_env="$(bash "$ROOT/scripts/stack.sh" env)"
	eval "$stack_env"
fi
export HERALD_TEST_DATABASE_URL HERALD_TEST_REDIS_ADDR

# The Unleash server the feature flag tests start (libs/flags). Outside CI a machine without
# Node.js still runs everything else: that test is skipped, saying why.
if ! bash "$ROOT/scripts/unleash.sh"; then
	if [[ "${CI:-}" == true ]]; then
		exit 1
	fi
	echo "test: the Unleash server is not installed; the tests that need it are skipped" >&2
fi

mapfile -t modules < <(go list -m -f '{{.Dir}}')
((${#modules[@]} > 0)) || {
	echo "test: no modules found (go list -m)" >&2
	exit 1
}

summary=()
failed=0
for dir in "${modules[@]}"; do
	rel="${dir#"$ROOT"/}"
	# A module with no Go files yet makes go test fail with "no packages to test".
	if [[ -z "$(cd "$dir" && go list -e ./... 2>/dev/null)" ]]; then
		summary+=("$(printf '%-4s  %-26s %s' skip "$rel" "(no packages)")")
		continue
	fi
	echo "==> $rel: go test -count=1 -timeout 15m${*:+ $*} ./..."
	start=$SECONDS
	if (cd "$dir" && go test -count=1 -timeout 15m "$@" ./...); then
		status=ok
	else
		status=FAIL
		failed=$((failed + 1))
	fi
	summary+=("$(printf '%-4s  %-26s %ss' "$status" "$rel" "$((SECONDS - start))")")
done

echo
echo "test summary:"
printf '  %s\n' "${summary[@]}"
if ((failed > 0)); then
	echo "test: $failed module(s) failed" >&2
	exit 1
fi
