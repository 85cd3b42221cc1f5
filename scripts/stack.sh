#!/usr/bin/env bash
# stack.sh runs a throwaway PostgreSQL cluster and Redis for tests and local development, with
# all their state under the git-ignored .dev/ folder at the repository root.
#
#   scripts/stack.sh start    start both (nothing to do when already running) and wait for them
#   scripts/stack.sh stop     stop both, and the benchmark cluster when it runs
#   scripts/stack.sh status   print whether each runs; exit 1 unless both do
#   scripts/stack.sh env      print export lines for the tests and the dev stack
#                             (eval "$(scripts/stack.sh env)")
#
#   scripts/stack.sh bench-start   start the benchmark cluster (below), wait for it, and print
#                                  its durability settings
#   scripts/stack.sh bench-env     print export lines for the benchmarks: the benchmark
#                                  cluster and the stack's Redis
#
# Ports are not the defaults so that the stack never collides with a system PostgreSQL or
# Redis: PostgreSQL 55432 (HERALD_PG_PORT), Redis 56379 (HERALD_REDIS_PORT). Both listen on
# 127.0.0.1 only.
#
# The benchmark cluster (`make bench`) is a second throwaway PostgreSQL cluster in .dev/pg-bench,
# on 127.0.0.1:55433 (HERALD_BENCH_PG_PORT), the same as the test cluster except that it is
# durable as in production: fsync, synchronous_commit and full_page_writes on. The test
# cluster turns them off for speed, which makes a commit almost free; a benchmark comparing
# designs that commit at different rates would then measure something production never sees.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=deps.sh
source "$ROOT/scripts/deps.sh"

DEV="$ROOT/.dev"
PG_DIR="$DEV/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_PORT="${HERALD_PG_PORT:-55432}"
PG_SUPERUSER=herald
PG_DEV_DATABASE=herald
REDIS_DIR="$DEV/redis"
REDIS_PORT="${HERALD_REDIS_PORT:-56379}"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
HOST=127.0.0.1
# How long start waits for each server to answer.
START_TIMEOUT_SECONDS="${HERALD_STACK_START_TIMEOUT:-60}"
# PostgreSQL refuses to run as root; as root, the cluster belongs to this system user.
PG_RUN_USER=herald-dev
# The benchmark cluster: use_bench_cluster points the pg_* functions at it.
BENCH_PG_DIR="$DEV/pg-bench"
BENCH_PG_PORT="${HERALD_BENCH_PG_PORT:-55433}"

log() { echo "stack: $*"; }
die() {
	echo "stack: $*" >&2
	exit 1
}

# as_pg_owner runs a command as the user that owns the cluster: the current user, or
# PG_RUN_USER when we are root.
as_pg_owner() {
	if [[ "$(id -u)" -eq 0 ]]; then
		if command -v runuser >/dev/null; then
			runuser -u "$PG_RUN_USER" -- "$@"
		else
			su -s /bin/sh "$PG_RUN_USER" -c "$(printf '%q ' "$@")"
		fi
	else
		"$@"
	fi
}

# prepare_root_user creates PG_RUN_USER when missing, gives it .dev/pg, and makes sure it can
# traverse every directory on the way to the repository (search permission only, never read).
prepare_root_user() {
	[[ "$(id -u)" -eq 0 ]] || return 0
	if ! id -u "$PG_RUN_USER" >/dev/null 2>&1; then
		log "creating system user $PG_RUN_USER to own the PostgreSQL cluster"
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$PG_RUN_USER"
	fi
	mkdir -p "$PG_DIR"
	if [[ "$(stat -c %U "$PG_DIR")" != "$PG_RUN_USER" ]] ||
		{ [[ -d "$PG_DATA" ]] && [[ "$(stat -c %U "$PG_DATA")" != "$PG_RUN_USER" ]]; }; then
		chown -R "$PG_RUN_USER:" "$PG_DIR"
	fi
	# From the top down: a directory is reachable only when all above it are.
	local dir ancestors=() path="$PG_DIR"
	while [[ "$path" != / ]]; do
		path="$(dirname "$path")"
		ancestors=("$path" "${ancestors[@]}")
	done
	for dir in "${ancestors[@]}"; do
		if ! as_pg_owner test -x "$dir" 2>/dev/null; then
			log "granting $PG_RUN_USER search permission on $dir"
			if command -v setfacl >/dev/null; then
				setfacl -m "u:$PG_RUN_USER:x" "$dir"
			else
				chmod o+x "$dir"
			fi
		fi
	done
}

pg_bin() {
	local bindir
	bindir="$(herald_pg_bindir)" || die "PostgreSQL server binaries not found; run scripts/deps.sh"
	echo "$bindir/$1"
}

pg_ready() {
	"$(herald_pg_client pg_isready)" -q -h "$HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres
}

pg_running() {
	[[ -f "$PG_DATA/PG_VERSION" ]] && as_pg_owner "$(pg_bin pg_ctl)" status -D "$PG_DATA" >/dev/null 2>&1
}

# pg_running_port prints the port the running cluster listens on (line 4 of postmaster.pid).
pg_running_port() {
	sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null
}

pg_psql() {
	"$(herald_pg_client psql)" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" "$@"
}

pg_init() {
	log "initialising PostgreSQL cluster in ${PG_DATA#"$ROOT"/}"
	mkdir -p "$PG_DIR"
	prepare_root_user
	# Trust authentication: this is a throwaway local cluster for tests and development. It
	# listens on 127.0.0.1 only, is never reachable from outside the machine, and holds no data
	# worth protecting; a password would only have to be written next to it anyway.
	as_pg_owner "$(pg_bin initdb)" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth=trust \
		--encoding=UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
		{
			tail -n 30 "$PG_DIR/initdb.log" >&2
			die "initdb failed"
		}
	as_pg_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Throwaway local cluster (scripts/stack.sh): trust on the loopback only, never reachable from
# outside the machine.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
EOF
	as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# scripts/stack.sh: a throwaway cluster for tests and development.
# The port is given on the command line (HERALD_PG_PORT) so it can change without initdb.
listen_addresses = '127.0.0.1'
# No Unix socket: clients connect over TCP, and socket paths under a deep checkout could exceed
# the platform's length limit.
unix_socket_directories = ''
# Many test databases are used in parallel, each with its own pool.
max_connections = 300
# Durability is worthless here and costs time: a crash loses a cluster we would throw away.
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %d '
EOF
}

pg_start() {
	if [[ "$(id -u)" -ne 0 && -d "$PG_DATA" && ! -O "$PG_DATA" ]]; then
		die "${PG_DATA#"$ROOT"/} belongs to $(stat -c %U "$PG_DATA"), not $(id -un); remove ${PG_DIR#"$ROOT"/} or run as that user"
	fi
	if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
		pg_init
	else
		prepare_root_user
	fi
	if pg_running; then
		local port
		port="$(pg_running_port)"
		if [[ -n "$port" && "$port" != "$PG_PORT" ]]; then
			die "PostgreSQL is already running on port $port, not $PG_PORT; run scripts/stack.sh stop first"
		fi
		log "PostgreSQL already running on $HOST:$PG_PORT"
	else
		log "starting PostgreSQL on $HOST:$PG_PORT"
		if ! as_pg_owner "$(pg_bin pg_ctl)" start -D "$PG_DATA" -l "$PG_LOG" -w \
			-t "$START_TIMEOUT_SECONDS" -o "-p $PG_PORT" >/dev/null 9>&-; then
			echo "--- ${PG_LOG#"$ROOT"/} (last 30 lines)" >&2
			tail -n 30 "$PG_LOG" >&2 || true
			die "PostgreSQL did not start"
		fi
	fi
	wait_until "PostgreSQL" "$PG_LOG" pg_ready
	if [[ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DEV_DATABASE'")" != 1 ]]; then
		log "creating database $PG_DEV_DATABASE"
		pg_psql -d postgres -c "CREATE DATABASE $PG_DEV_DATABASE"
	fi
}

# pg_stop stops the cluster when it runs, its log lines calling it $1 (PostgreSQL by default).
pg_stop() {
	local what="${1:-PostgreSQL}"
	if pg_running; then
		log "stopping $what"
		as_pg_owner "$(pg_bin pg_ctl)" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
	else
		log "$what not running"
	fi
}

# use_bench_cluster points the pg_* functions (and PG_* variables) at the benchmark cluster,
# for the rest of the shell: call it in a subshell when the test cluster comes next.
use_bench_cluster() {
	[[ "$BENCH_PG_PORT" != "$PG_PORT" ]] ||
		die "the benchmark cluster needs a port of its own: HERALD_BENCH_PG_PORT and HERALD_PG_PORT are both $PG_PORT"
	PG_DIR="$BENCH_PG_DIR"
	PG_DATA="$PG_DIR/data"
	PG_LOG="$PG_DIR/postgres.log"
	PG_PORT="$BENCH_PG_PORT"
}

# pg_durability prints the running cluster's fsync, synchronous_commit and full_page_writes as
# name=value pairs on one line.
pg_durability() {
	pg_psql -d postgres -tA -F ' ' -c "SELECT 'fsync=' || current_setting('fsync'),
		'synchronous_commit=' || current_setting('synchronous_commit'),
		'full_page_writes=' || current_setting('full_page_writes')"
}

# bench_pg_start starts the benchmark cluster: initialised as the test cluster is, then made
# durable, and checked to be durable once running.
bench_pg_start() {
	use_bench_cluster
	if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
		pg_init
		# The last setting in the file wins: these replace the test cluster's.
		as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# scripts/stack.sh bench-start: the benchmark cluster is durable as in production, so that a
# commit costs what it costs there (these replace the settings above). Its port on the command
# line is HERALD_BENCH_PG_PORT.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
	fi
	pg_start
	local settings
	settings="$(pg_durability)"
	if [[ "$settings" != "fsync=on synchronous_commit=on full_page_writes=on" ]]; then
		die "the benchmark cluster in ${PG_DATA#"$ROOT"/} is not durable ($settings); run scripts/stack.sh stop, remove ${PG_DIR#"$ROOT"/} and start it again"
	fi
	log "benchmark PostgreSQL ready on $HOST:$PG_PORT (data ${PG_DATA#"$ROOT"/}): $settings"
}

# bench_pg_stop stops the benchmark cluster when it runs, and says nothing otherwise: most
# machines never start it.
bench_pg_stop() {
	use_bench_cluster
	pg_running || return 0
	pg_stop "the benchmark PostgreSQL"
}

redis_cli() {
	"$(herald_redis_bin redis-cli)" -h "$HOST" -p "$REDIS_PORT" "$@"
}

redis_ready() {
	[[ "$(redis_cli ping 2>/dev/null)" == PONG ]]
}

# redis_pid prints the pid of our redis-server when it is alive.
redis_pid() {
	local pid
	[[ -f "$REDIS_PIDFILE" ]] || return 1
	pid="$(cat "$REDIS_PIDFILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

redis_start() {
	mkdir -p "$REDIS_DIR"
	if redis_pid >/dev/null && redis_ready; then
		log "Redis already running on $HOST:$REDIS_PORT"
		return 0
	fi
	if redis_pid >/dev/null; then
		die "redis-server (pid $(redis_pid)) from ${REDIS_PIDFILE#"$ROOT"/} does not answer on port $REDIS_PORT; run scripts/stack.sh stop first"
	fi
	rm -f "$REDIS_PIDFILE"
	log "starting Redis on $HOST:$REDIS_PORT"
	# No persistence: the data is throwaway. volatile-lru as in production: feature flags are
	# keys without a TTL and must never be evicted, only keys with a TTL (caches) may be.
	if ! "$(herald_redis_bin redis-server)" \
		--port "$REDIS_PORT" \
		--bind "$HOST" \
		--protected-mode yes \
		--dir "$REDIS_DIR" \
		--daemonize yes \
		--pidfile "$REDIS_PIDFILE" \
		--logfile "$REDIS_LOG" \
		--save "" \
		--appendonly no \
		--maxmemory-policy volatile-lru 9>&-; then
		echo "--- ${REDIS_LOG#"$ROOT"/} (last 30 lines)" >&2
		tail -n 30 "$REDIS_LOG" >&2 || true
		die "Redis did not start"
	fi
	wait_until "Redis" "$REDIS_LOG" redis_ready
}

redis_stop() {
	local pid
	if ! pid="$(redis_pid)"; then
		log "Redis not running"
		rm -f "$REDIS_PIDFILE"
		return 0
	fi
	log "stopping Redis"
	redis_cli shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || die "Redis (pid $pid) did not stop within 30s"
		sleep 0.1
	done
	rm -f "$REDIS_PIDFILE"
}

# wait_until polls a readiness check until it passes or the deadline expires, in which case it
# prints the tail of the server's log and fails.
wait_until() {
	local name="$1" logfile="$2" check="$3"
	local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
	until "$check"; do
		if ((SECONDS >= deadline)); then
			echo "--- ${logfile#"$ROOT"/} (last 30 lines)" >&2
			tail -n 30 "$logfile" >&2 || true
			die "$name did not answer within ${START_TIMEOUT_SECONDS}s"
		fi
		sleep 0.1
	done
}

# lock serialises start and stop, so that two commands starting the stack at once (make test
# and make dev, say) do not both run initdb or start a second server. The servers are started
# with fd 9 closed: a daemon holding it would hold the lock for as long as it runs.
lock() {
	mkdir -p "$DEV"
	exec 9>"$DEV/stack.lock"
	if command -v flock >/dev/null; then
		flock 9
	fi
}

cmd_start() {
	lock
	pg_start
	redis_start
	log "ready: PostgreSQL $HOST:$PG_PORT (superuser $PG_SUPERUSER), Redis $HOST:$REDIS_PORT"
}

cmd_stop() {
	lock
	local rc=0
	pg_stop || rc=1
	(bench_pg_stop) || rc=1
	redis_stop || rc=1
	return "$rc"
}

cmd_status() {
	local rc=0
	if pg_running && pg_ready; then
		echo "postgresql: running on $HOST:$(pg_running_port) (data ${PG_DATA#"$ROOT"/})"
	else
		echo "postgresql: stopped"
		rc=1
	fi
	# Informational only: the benchmark cluster is not part of the stack's status.
	(
		use_bench_cluster
		if pg_running && pg_ready; then
			echo "postgresql (benchmarks): running on $HOST:$(pg_running_port) (data ${PG_DATA#"$ROOT"/}, $(pg_durability))"
		fi
	) || true
	if redis_pid >/dev/null && redis_ready; then
		echo "redis: running on $HOST:$REDIS_PORT (pid $(redis_pid))"
	else
		echo "redis: stopped"
		rc=1
	fi
	return "$rc"
}

# test_env prints the variables the tests find their servers by (migrations/pgtest): the
# cluster of the pg_* functions and Redis.
test_env() {
	cat <<EOF
export HERALD_TEST_DATABASE_URL='postgres://$PG_SUPERUSER@$HOST:$PG_PORT/postgres?sslmode=disable'
export HERALD_TEST_REDIS_ADDR='$HOST:$REDIS_PORT'
EOF
}

cmd_env() {
	test_env
	cat <<EOF
export DATABASE_URL='postgres://$PG_SUPERUSER@$HOST:$PG_PORT/$PG_DEV_DATABASE?sslmode=disable'
export REDIS_HOST='$HOST'
export REDIS_PORT='$REDIS_PORT'
EOF
}

cmd_bench_start() {
	lock
	bench_pg_start
}

# cmd_bench_env prints what cmd_env prints for the tests, with the benchmark cluster in place of
# the test cluster: benchmarks find their server the way tests do (migrations/pgtest).
cmd_bench_env() {
	use_bench_cluster
	test_env
}

usage() {
	echo "usage: scripts/stack.sh start|stop|status|env|bench-start|bench-env" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
bench-start) cmd_bench_start ;;
bench-env) cmd_bench_env ;;
*) usage ;;
esac
