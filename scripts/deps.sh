#!/usr/bin/env bash
# deps.sh makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres, plus pg_isready
# and psql), redis-server (plus redis-cli) and Node.js with npm (for the Unleash server of the
# feature flag tests, scripts/unleash.sh) are installed, and prints what it found.
#
#   scripts/deps.sh            check, install with apt-get when root, print what was found
#
# When something is missing and we run as root, the Debian packages are installed
# non-interactively. When not root, it prints the command to run (or the docker compose
# alternative) and exits 1. It is fast and changes nothing when everything is there.
#
# scripts/stack.sh sources this file for herald_pg_bindir and herald_redis_bin; the checks run
# only when the file is executed.
set -euo pipefail

# herald_pg_bindir prints the directory holding initdb, pg_ctl and postgres: PATH first, then
# /usr/lib/postgresql/<version>/bin, newest version first. Returns 1 when none has all three.
herald_pg_bindir() {
	local initdb dir
	if initdb="$(command -v initdb 2>/dev/null)"; then
		# Follow symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb so
		# that pg_ctl and postgres come from the same installation.
		dir="$(dirname "$(readlink -f "$initdb")")"
		if [[ -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
			echo "$dir"
			return 0
		fi
		dir="$(dirname "$initdb")"
		if [[ -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
			echo "$dir"
			return 0
		fi
	fi
	local candidates=()
	shopt -s nullglob
	candidates=(/usr/lib/postgresql/*/bin)
	shopt -u nullglob
	if ((${#candidates[@]} > 0)); then
		while IFS= read -r dir; do
			if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
				echo "$dir"
				return 0
			fi
		done < <(printf '%s\n' "${candidates[@]}" | sort -t/ -k5,5 -V -r)
	fi
	return 1
}

# herald_pg_client prints the path of a PostgreSQL client program (pg_isready, psql): from the
# server's bin directory when it has it, else from PATH. Returns 1 when not found.
herald_pg_client() {
	local name="$1" bindir
	if bindir="$(herald_pg_bindir)" && [[ -x "$bindir/$name" ]]; then
		echo "$bindir/$name"
		return 0
	fi
	command -v "$name" 2>/dev/null
}

# herald_redis_bin prints the path of redis-server or redis-cli. Returns 1 when not found.
herald_redis_bin() {
	command -v "$1" 2>/dev/null
}

# missing_packages prints the Debian packages that would supply what is missing, one a line.
missing_packages() {
	if ! herald_pg_bindir >/dev/null || ! herald_pg_client pg_isready >/dev/null ||
		! herald_pg_client psql >/dev/null; then
		echo postgresql
	fi
	if ! herald_redis_bin redis-server >/dev/null || ! herald_redis_bin redis-cli >/dev/null; then
		echo redis-server
	fi
}

# missing_node_packages prints nodejs and npm when node or npm is missing: they run the Unleash
# server of the feature flag tests only, so a machine without them still runs everything else.
missing_node_packages() {
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		echo nodejs
		echo npm
	fi
}

# install_packages installs the given Debian packages without prompts. The packages' own
# services (the distribution's PostgreSQL cluster on 5432, redis on 6379) are never used: while
# installing, a policy-rc.d keeps them from being started, so a container without an init
# system does not fail the install and nothing else ends up listening.
install_packages() {
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\n# Temporary: keeps packages from starting services while scripts/deps.sh installs.\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi

	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	# postgresql-15 is the version the project is developed against; where this release does
	# not carry it, the distribution's default major version (postgresql) is fine.
	local pkgs=() pkg
	for pkg in "$@"; do
		if [[ "$pkg" == postgresql ]] && apt-cache show postgresql-15 >/dev/null 2>&1; then
			pkg=postgresql-15
		fi
		pkgs+=("$pkg")
	done
	echo "deps: installing ${pkgs[*]}"
	apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold "${pkgs[@]}"
}

# report prints one line per dependency with where it was found and its version.
report() {
	local bindir
	bindir="$(herald_pg_bindir)"
	echo "deps: postgresql $("$bindir/postgres" --version | awk '{print $3}') in $bindir"
	echo "deps: redis-server $("$(herald_redis_bin redis-server)" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') at $(herald_redis_bin redis-server)"
	if [[ -z "$(missing_node_packages)" ]]; then
		echo "deps: node $(node --version) at $(command -v node), npm $(npm --version)"
	fi
}

main() {
	local missing=() node=()
	mapfile -t missing < <(missing_packages)
	mapfile -t node < <(missing_node_packages)
	if ((${#missing[@]} + ${#node[@]} == 0)); then
		report
		return 0
	fi

	if [[ "$(id -u)" -ne 0 && ${#missing[@]} -eq 0 ]]; then
		echo "deps: node or npm is missing: the tests that need the Unleash server are skipped (and fail in CI); install them with: sudo apt-get install -y ${node[*]}" >&2
		report
		return 0
	fi
	missing+=("${node[@]}")
	if [[ "$(id -u)" -ne 0 ]]; then
		cat >&2 <<EOF
deps: missing Debian packages: ${missing[*]}
deps: (needed: initdb, pg_ctl, postgres, pg_isready, psql, redis-server, redis-cli, node, npm)
deps: install them with:

    sudo apt-get install -y ${missing[*]}

deps: or run PostgreSQL and Redis in containers instead of the local stack:

    docker compose -f compose/docker-compose.yml up -d postgres redis

deps: and point the tests at them with HERALD_TEST_DATABASE_URL and HERALD_TEST_REDIS_ADDR.
EOF
		return 1
	fi

	if ! command -v apt-get >/dev/null; then
		echo "deps: missing ${missing[*]} and apt-get is not available; install them with the system's package manager" >&2
		return 1
	fi
	install_packages "${missing[@]}"

	mapfile -t missing < <(missing_packages; missing_node_packages)
	if ((${#missing[@]} > 0)); then
		echo "deps: still missing after install: ${missing[*]}" >&2
		return 1
	fi
	report
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	main "$@"
fi
