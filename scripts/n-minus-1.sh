#!/usr/bin/env bash
# n-minus-1.sh checks that the previous release keeps working on a database migrated by the
# current migrations: every deploy migrates first, while the previous release still serves.
#
#   scripts/n-minus-1.sh [--inject SCHEMA:FILE]... [REF]
#
# REF is the previous release: by default the newest tag reachable from HEAD~1 when there is
# any tag, else HEAD~1 (the previous commit of main). The check:
#
#   1. exports REF's tree into a temporary directory (git archive: nothing changes in .git);
#   2. replaces REF's migrations/ with the current tree's, plus the files given with --inject;
#   3. migrates a fresh database with them as a production deploy does (go run
#      ./migrations/cmd/migrate up with APP_ENV=production: roles, schema migrations, River,
#      no seed data) on the server of HERALD_TEST_DATABASE_URL;
#   4. runs REF's end-to-end tests (tools/e2e, which build REF's services) against it.
#
# REF's e2e suite gets the database through HERALD_E2E_DATABASE_URL when it knows that
# variable. An older suite does not, and makes its databases from pgtest's template instead;
# since pgtest belongs to the migrations module, which step 2 replaced, that template is built
# by the current migrations too. Either way REF's code runs against the current schema.
#
# --inject SCHEMA:FILE adds FILE as the next up migration of SCHEMA for this check only (to
# show that a breaking migration fails it); repeatable.
#
# HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR name the servers, as for scripts/test.sh;
# when they are not both set the local stack (scripts/stack.sh) is started or reused.
#
# Exit status: 0 the check passed, or was skipped (no previous commit, or REF has no
# tools/e2e); 1 REF's end-to-end tests failed against the current migrations; 2 bad command
# line; 3 the check could not run (REF unknown, the migrations did not apply, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER_PWD="$PWD"
cd "$ROOT"

log() { echo "n-minus-1: $*"; }
die() {
	local code="$1"
	shift
	echo "n-minus-1: $*" >&2
	exit "$code"
}
usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

injects=()
ref=""
while (($# > 0)); do
	case "$1" in
	--inject)
		(($# >= 2)) || usage
		injects+=("$2")
		shift 2
		;;
	--inject=*)
		injects+=("${1#--inject=}")
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[[ -z "$ref" ]] || usage
		ref="$1"
		shift
		;;
	esac
done

# --- the files to inject, checked first (a relative FILE is relative to the caller's directory)
for i in "${!injects[@]}"; do
	spec="${injects[$i]}"
	schema="${spec%%:*}"
	file="${spec#*:}"
	[[ "$spec" == *:* && -n "$schema" && -n "$file" ]] || die 2 "--inject takes SCHEMA:FILE, not '$spec'"
	[[ "$file" == /* ]] || file="$CALLER_PWD/$file"
	[[ -d "$ROOT/migrations/sql/$schema" ]] || die 2 "--inject: no schema '$schema' under migrations/sql"
	[[ -f "$file" ]] || die 2 "--inject: no file '$file'"
	injects[i]="$schema:$file"
done

started=$SECONDS

# --- the previous release
if [[ -z "$ref" ]]; then
	if ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
		log "no previous commit (first commit, or a shallow clone: fetch with depth 0): skipping"
		exit 0
	fi
	if [[ -n "$(git tag --list | head -n 1)" ]] && tag="$(git describe --tags --abbrev=0 HEAD~1 2>/dev/null)"; then
		ref="$tag"
	else
		ref="HEAD~1"
	fi
fi
commit="$(git rev-parse --verify --quiet "${ref}^{commit}")" || die 3 "unknown revision: $ref"
if ! git cat-file -e "${commit}:tools/e2e" 2>/dev/null; then
	log "$ref ($(git rev-parse --short "$commit")) has no tools/e2e: nothing to run, skipping"
	exit 0
fi
log "previous release: $ref ($(git log -1 --format='%h %s' "$commit"))"

# --- the servers
if [[ -z "${HERALD_TEST_DATABASE_URL:-}" || -z "${HERALD_TEST_REDIS_ADDR:-}" ]]; then
	bash "$ROOT/scripts/deps.sh" >/dev/null || die 3 "PostgreSQL and Redis are missing (scripts/deps.sh)"
	bash "$ROOT/scripts/stack.sh" start >/dev/null || die 3 "the local stack did not start (scripts/stack.sh)"
	eval "$(bash "$ROOT/scripts/stack.sh" env)"
fi
export HERALD_TEST_DATABASE_URL HERALD_TEST_REDIS_ADDR
# shellcheck source-path=SCRIPTDIR source=deps.sh
source "$ROOT/scripts/deps.sh"
psql="$(herald_pg_client psql)" || die 3 "psql not found (scripts/deps.sh installs it)"

# The database URL is the server's with another database name (and its query kept).
[[ "$HERALD_TEST_DATABASE_URL" =~ ^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$ ]] ||
	die 3 "HERALD_TEST_DATABASE_URL is not a postgres:// URL"
server_prefix="${BASH_REMATCH[1]}"
server_query="${BASH_REMATCH[4]}"
db="herald_n1_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
db_url="${server_prefix}/${db}${server_query}"

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-n-minus-1.XXXXXX")"
db_created=""
cleanup() {
	if [[ -n "$db_created" ]]; then
		"$psql" "$HERALD_TEST_DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
			-c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
			echo "n-minus-1: could not drop database $db" >&2
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# --- 1 and 2: REF's tree with the current migrations
tree="$work/ref"
mkdir -p "$tree"
git archive --format=tar "$commit" | tar -x -C "$tree"
rm -rf "$tree/migrations"
cp -R "$ROOT/migrations" "$tree/migrations"
for spec in "${injects[@]}"; do
	schema="${spec%%:*}"
	file="${spec#*:}"
	dir="$tree/migrations/sql/$schema"
	last="$(find "$dir" -maxdepth 1 -name '[0-9]*_*.up.sql' -printf '%f\n' | sort | tail -n 1)"
	next="$(printf '%06d' $((10#${last%%_*} + 1)))"
	cp "$file" "$dir/${next}_n_minus_1_injected.up.sql"
	log "injected $(basename "$file") as $schema/${next}_n_minus_1_injected.up.sql"
done

# Builds and tests run in the exported tree's own workspace, whatever the caller's GOWORK.
unset GOWORK GOFLAGS

# --- 3: a fresh database, migrated the way a production deploy migrates
"$psql" "$HERALD_TEST_DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null ||
	die 3 "could not create database $db"
db_created=1
log "migrating database $db with the current migrations"
if ! (cd "$tree" && DATABASE_URL="$db_url" APP_ENV=production LOG_LEVEL=warn go run ./migrations/cmd/migrate up); then
	die 3 "migrate up with the current migrations failed"
fi

# --- 4: the previous release's end-to-end tests
log "running the end-to-end tests of $ref against it"
if ! (cd "$tree/tools" && HERALD_E2E_DATABASE_URL="$db_url" go test -count=1 -timeout 15m ./e2e); then
	echo "n-minus-1: FAILED: the end-to-end tests of $ref fail on a database migrated by the current migrations: a migration breaks the previous release (docs/migrations.md, expand/contract) ($((SECONDS - started))s)" >&2
	exit 1
fi
log "passed: $ref works on the current migrations ($((SECONDS - started))s)"
