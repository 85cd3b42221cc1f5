#!/usr/bin/env bash
# unleash.sh installs the Unleash server the feature flag tests run against (libs/flags starts
# it as a child process): `npm ci` in tools/unleash-server, from its package-lock.json.
#
#   scripts/unleash.sh          install when node_modules is missing or the lockfile changed
#
# It is fast and changes nothing when the installed packages match the lockfile (a stamp in
# node_modules records the lockfile's checksum). Node.js 20.17 or newer and npm are needed
# (scripts/deps.sh installs them when missing); npm reads its registry from the usual npm
# configuration. Package install scripts are not run: the server needs none.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tools/unleash-server"
STAMP="$DIR/node_modules/.herald-lockfile.sha256"
# The engines of unleash-server and its dependencies: ^20.17.0 || >=22.9.0.
MIN_NODE_MAJOR=20
MIN_NODE_MINOR=17

for cmd in node npm; do
	if ! command -v "$cmd" >/dev/null; then
		echo "unleash: $cmd not found; install Node.js $MIN_NODE_MAJOR.$MIN_NODE_MINOR or newer and npm (scripts/deps.sh does, as root)" >&2
		exit 1
	fi
done
node_version="$(node --version)"
IFS=. read -r node_major node_minor _ <<<"${node_version#v}"
if ((node_major < MIN_NODE_MAJOR || (node_major == MIN_NODE_MAJOR && node_minor < MIN_NODE_MINOR))); then
	echo "unleash: Node.js $node_version is too old; unleash-server needs $MIN_NODE_MAJOR.$MIN_NODE_MINOR or newer" >&2
	exit 1
fi

want="$(sha256sum "$DIR/package-lock.json" | awk '{print $1}')"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$DIR/node_modules/unleash-server/package.json" ]]; then
	echo "unleash: unleash-server $(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$DIR/node_modules/unleash-server/package.json") installed in tools/unleash-server (node $node_version)"
	exit 0
fi

echo "unleash: npm ci in tools/unleash-server (node $node_version, npm $(npm --version))"
start=$SECONDS
rm -f "$STAMP"
(cd "$DIR" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$want" >"$STAMP"
echo "unleash: installed in $((SECONDS - start))s"
