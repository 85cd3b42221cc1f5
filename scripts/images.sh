#!/usr/bin/env bash
# images.sh builds Herald's container images without a container daemon (buildah, vfs
# storage, chroot isolation) from deploy/docker/Dockerfile, then checks every image:
#
#   - run with no configuration, it exits non-zero with a one-line error naming a variable
#     (the binary starts as the nonroot user and refuses a missing configuration);
#   - its configured user is 65532:65532 (nonroot) and it has no shell;
#   - none of its files is or contains a local secret, .dev/ or .env content, or a build path.
#
# usage: scripts/images.sh [name...]
#   names: gateway campaign recipient events-ingest worker migrate (default: all of them)
#
# Images are tagged herald-<name>:<git describe --always --dirty> and herald-<name>:latest in
# the local containers storage (podman images --storage-driver vfs lists them).
#
# The Dockerfile starts from golang:1.26-bookworm and gcr.io/distroless/static-debian12:nonroot.
# When an image of that name is not in local storage (no registry is reachable from the build
# machines), a local stand-in is built under the same name from scratch plus files: the host's
# Go toolchain and the module cache the services need (so the build runs offline), and the
# distroless files (passwd/group with nonroot, CA certificates, zoneinfo, /tmp, /home/nonroot).
# Pull the real images first (`podman pull ...`) and they are used instead. Images built on a
# stand-in inherit its label org.heraldmail.herald.standin=true: they are for local checks, not
# for a registry: images to publish are built on the real bases.
#
# Environment: HERALD_IMAGES_KEEP_GOING=1 builds and checks every name even after a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DOCKERFILE=deploy/docker/Dockerfile
export CONTAINERS_CONF="$ROOT/deploy/docker/containers.conf"
ALL_NAMES=(gateway campaign recipient events-ingest worker migrate)
GO_BASE=docker.io/library/golang:1.26-bookworm
RUNTIME_BASE=gcr.io/distroless/static-debian12:nonroot
STANDIN_LABEL=org.heraldmail.herald.standin
MODULES_LABEL=org.heraldmail.herald.standin.modules
NONROOT_UID=65532
# File of local secret values that no image may contain (see secret_needles).
NEEDLES=""

BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs --runtime /usr/sbin/runc)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

# ensure_tools installs buildah, podman and runc from Debian when they are missing.
ensure_tools() {
	if command -v buildah >/dev/null && command -v podman >/dev/null && [[ -x /usr/sbin/runc ]]; then
		return
	fi
	log "installing buildah, podman and runc"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends buildah podman runc >/dev/null
}

image_exists() { "${PODMAN[@]}" image exists "$1"; }

image_label() {
	"${PODMAN[@]}" image inspect --format "{{index .Labels \"$2\"}}" "$1" 2>/dev/null || true
}

# modules_fingerprint identifies what is baked into the Go stand-in: it changes with the host's
# Go version and whenever a go.mod or go.sum of a module that goes into an image changes.
modules_fingerprint() {
	local files=(libs/go.mod libs/go.sum proto/go.mod proto/go.sum migrations/go.mod migrations/go.sum)
	files+=(services/*/go.mod)
	[[ -n $(compgen -G 'services/*/go.sum') ]] && files+=(services/*/go.sum)
	{ go env GOVERSION; cat "${files[@]}"; } | sha256sum | cut -c1-16
}

# copy_with_libs copies the host program $1 to $3$2, with the shared libraries it loads.
copy_with_libs() {
	local src="$1" dst="$2" root="$3" lib
	install -D -m 0755 "$(readlink -f "$src")" "$root$dst"
	for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
		install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
}

# build_go_standin builds $GO_BASE: the host's Go toolchain, a POSIX shell (RUN lines use
# one, as in the real image), CA certificates, and a module cache with every module the
# images need, with GOPROXY=off so that the build is offline and reproducible.
build_go_standin() {
	local fingerprint="$1" stage ctr mnt goroot gomodcache dir proxy
	goroot="$(go env GOROOT)"
	[[ $(go env GOVERSION) == go1.26* ]] || die "the $GO_BASE stand-in needs Go 1.26 on the host, found $(go env GOVERSION)"
	gomodcache="$(go env GOMODCACHE)"
	stage="$(mktemp -d)"
	trap 'rm -rf "$stage"; trap - RETURN' RETURN

	log "collecting the modules of the images into a module cache (local cache first)"
	for dir in migrations services/*/; do
		(
			cd "$dir"
			proxy="file://$gomodcache/cache/download,$(go env GOPROXY)"
			export GOWORK=off GOFLAGS=-modcacherw GOMODCACHE="$stage/gomodcache" GOPROXY="$proxy"
			go mod download
			go list -e -deps ./... >/dev/null
		) || die "download the modules of $dir"
	done

	log "building stand-in $GO_BASE (Go $(go env GOVERSION) from $goroot)"
	ctr="$("${BUILDAH[@]}" from --quiet scratch)"
	mnt="$("${BUILDAH[@]}" mount "$ctr")"
	mkdir -p "$mnt/usr/local" "$mnt/etc/ssl/certs" "$mnt/go/bin" "$mnt/go/pkg/mod/cache" "$mnt/bin"
	cp -a "$goroot" "$mnt/usr/local/go"
	cp -a "$stage/gomodcache/cache/download" "$mnt/go/pkg/mod/cache/download"
	copy_with_libs /bin/sh /bin/sh "$mnt"
	cp -L /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$mnt/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$mnt/etc/group"
	install -d -m 0700 "$mnt/root"
	install -d -m 1777 "$mnt/tmp"
	"${BUILDAH[@]}" umount "$ctr" >/dev/null
	"${BUILDAH[@]}" config \
		--env GOLANG_VERSION="$(go env GOVERSION | sed 's/^go//')" \
		--env GOTOOLCHAIN=local \
		--env GOPATH=/go \
		--env GOPROXY=off \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--workingdir /go \
		--label "$STANDIN_LABEL=true" \
		--label "$MODULES_LABEL=$fingerprint" \
		"$ctr"
	"${BUILDAH[@]}" commit --quiet --rm "$ctr" "$GO_BASE" >/dev/null
}

# build_runtime_standin builds $RUNTIME_BASE with the files distroless static ships.
build_runtime_standin() {
	local ctr mnt
	log "building stand-in $RUNTIME_BASE"
	ctr="$("${BUILDAH[@]}" from --quiet scratch)"
	mnt="$("${BUILDAH[@]}" mount "$ctr")"
	mkdir -p "$mnt/etc/ssl/certs" "$mnt/usr/share"
	cat >"$mnt/etc/passwd" <<-EOF
		root:x:0:0:root:/root:/sbin/nologin
		nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
		nonroot:x:$NONROOT_UID:$NONROOT_UID:nonroot:/home/nonroot:/sbin/nologin
	EOF
	cat >"$mnt/etc/group" <<-EOF
		root:x:0:
		nobody:x:65534:
		tty:x:5:
		staff:x:50:
		nonroot:x:$NONROOT_UID:
	EOF
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$mnt/etc/nsswitch.conf"
	cp -L /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
	if [[ -d /usr/share/zoneinfo ]]; then
		cp -a /usr/share/zoneinfo "$mnt/usr/share/zoneinfo"
	fi
	install -d -m 0700 "$mnt/root"
	install -d -m 1777 "$mnt/tmp"
	install -d -m 0700 -o "$NONROOT_UID" -g "$NONROOT_UID" "$mnt/home/nonroot"
	"${BUILDAH[@]}" umount "$ctr" >/dev/null
	"${BUILDAH[@]}" config \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		--user "$NONROOT_UID" \
		--workingdir /home/nonroot \
		--label "$STANDIN_LABEL=true" \
		"$ctr"
	"${BUILDAH[@]}" commit --quiet --rm "$ctr" "$RUNTIME_BASE" >/dev/null
}

# ensure_bases makes both base images available locally: a real image of the name is used as
# it is; a missing one, or a Go stand-in built for other go.mod/go.sum files, is (re)built.
ensure_bases() {
	local fingerprint old start
	grep -q '^FROM golang:1.26-bookworm AS build$' "$DOCKERFILE" || die "$DOCKERFILE: builder base changed; update $0"
	grep -q "^FROM $RUNTIME_BASE AS runtime\$" "$DOCKERFILE" || die "$DOCKERFILE: runtime base changed; update $0"

	fingerprint="$(modules_fingerprint)"
	start=$SECONDS
	if ! image_exists "$GO_BASE"; then
		build_go_standin "$fingerprint"
	elif [[ $(image_label "$GO_BASE" "$STANDIN_LABEL") == true &&
		$(image_label "$GO_BASE" "$MODULES_LABEL") != "$fingerprint" ]]; then
		old="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$GO_BASE")"
		log "module files changed since the $GO_BASE stand-in was built"
		build_go_standin "$fingerprint"
		"${PODMAN[@]}" rmi "$old" >/dev/null 2>&1 || true
	else
		log "using local $GO_BASE"
	fi
	if image_exists "$RUNTIME_BASE"; then
		log "using local $RUNTIME_BASE"
	else
		build_runtime_standin
	fi
	log "base images ready in $((SECONDS - start))s"
}

# check_modules_listed fails when a service module is missing from the Dockerfile's
# dependency layer (its dependencies would then be fetched at build time, or not at all).
check_modules_listed() {
	local dir
	for dir in services/*/; do
		dir="${dir%/}"
		grep -q "^COPY $dir/go\.\* $dir/\$" "$DOCKERFILE" || die "$DOCKERFILE does not copy $dir/go.*"
	done
}

# secret_needles writes to $1 the values of local secrets (.dev/ secret files, .env values):
# none of them may appear in an image. The values are only ever read by grep -F -f.
secret_needles() {
	local out="$1" f
	: >"$out"
	chmod 600 "$out"
	while IFS= read -r -d '' f; do
		tr -d '\r' <"$f" | awk 'length($0) >= 8' >>"$out"
	done < <(find .dev -maxdepth 3 -type f -size -4k \( -iname '*secret*' -o -iname '*password*' -o -iname '*token*' -o -iname '*.key' \) -print0 2>/dev/null)
	for f in .env .env.local; do
		[[ -f $f ]] || continue
		sed -n 's/^[A-Za-z_][A-Za-z0-9_]*=//p' "$f" | tr -d "\"'\r" | awk 'length($0) >= 8' >>"$out"
	done
}

# check_image verifies one built image; it prints every problem and fails when there is one.
check_image() {
	local name="$1" image="$2" needles="$3" user out errors rc lines mnt problems=0 hits=()
	local args=()
	[[ $name == migrate ]] && args=(up)

	user="$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$image")"
	if [[ $user != "$NONROOT_UID:$NONROOT_UID" && $user != nonroot && $user != "$NONROOT_UID" ]]; then
		echo "  FAIL user is '$user', want $NONROOT_UID:$NONROOT_UID"
		problems=$((problems + 1))
	else
		echo "  ok   user $user"
	fi

	# No environment at all: the process must refuse to start with a one-line error naming a
	# variable. Log records written before it (JSON, or console lines starting with a
	# timestamp) are allowed; a stack trace or a multi-line message is not.
	rc=0
	out="$(timeout 60 "${PODMAN[@]}" run --rm --network host "$image" "${args[@]}" 2>&1)" || rc=$?
	errors="$(grep -Ev '^(\{|[0-9]{4}-[0-9]{2}-[0-9]{2}T)' <<<"$out" | grep . || true)"
	lines="$(grep -c . <<<"$errors" || true)"
	# 124: timeout (it kept running); 125-127: podman could not start the entrypoint.
	if [[ $rc -eq 0 || $rc -ge 124 && $rc -le 127 ]]; then
		echo "  FAIL without configuration it exited $rc (want the program's own non-zero exit): $(head -c 300 <<<"$out")"
		problems=$((problems + 1))
	elif [[ $lines -ne 1 ]] || ! grep -Eq '\b[A-Z][A-Z0-9_]{2,}\b' <<<"$errors"; then
		echo "  FAIL without configuration (exit $rc) want one error line naming a variable, got:"
		head -n 5 <<<"$out" | sed 's/^/         /'
		problems=$((problems + 1))
	else
		echo "  ok   refuses to start without configuration (exit $rc): $errors"
	fi

	rc=0
	"${PODMAN[@]}" run --rm --network host --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1 || rc=$?
	mnt="$("${PODMAN[@]}" image mount "$image")"
	if [[ $rc -eq 0 || -e $mnt/bin/sh || -e $mnt/usr/bin/sh || -e $mnt/bin/busybox ]]; then
		echo "  FAIL the image has a shell"
		problems=$((problems + 1))
	else
		echo "  ok   no shell"
	fi

	mapfile -t hits < <(find "$mnt" \( -name '.dev' -o -name '.env*' -o -name '.git' -o -name '*.pem' \
		-o -name '*.key' -o -name 'id_rsa*' -o -name '*secret*' -o -name '*.go' \) -printf '/%P\n' | head -n 5)
	if [[ ${#hits[@]} -gt 0 ]]; then
		echo "  FAIL files that do not belong in an image:"
		printf '         %s\n' "${hits[@]}"
		problems=$((problems + 1))
	fi
	if grep -rIlE -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' -e 'AKIA[0-9A-Z]{16}' "$mnt" >/dev/null 2>&1; then
		echo "  FAIL a text file holds what looks like a private key or access key"
		problems=$((problems + 1))
	fi
	if [[ -s $needles ]] && grep -rqaF -f "$needles" "$mnt"; then
		echo "  FAIL the image contains the value of a local secret (.dev/ or .env)"
		problems=$((problems + 1))
	fi
	if [[ ! -f $mnt/usr/local/bin/herald ]]; then
		echo "  FAIL no /usr/local/bin/herald in the image"
		problems=$((problems + 1))
	elif grep -qaF -e "$ROOT" -e "/.dev/" "$mnt/usr/local/bin/herald"; then
		echo "  FAIL the binary embeds build paths ($ROOT or .dev/)"
		problems=$((problems + 1))
	fi
	if "${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" |
		grep -Eq '^[A-Z_]*(PASSWORD|SECRET|DATABASE_URL|DSN|TOKEN)[A-Z_]*='; then
		echo "  FAIL the image configuration sets a secret variable"
		problems=$((problems + 1))
	fi
	if [[ -s $needles ]] && "${PODMAN[@]}" history --no-trunc --format '{{.CreatedBy}}' "$image" | grep -qF -f "$needles"; then
		echo "  FAIL the image history holds the value of a local secret"
		problems=$((problems + 1))
	fi
	"${PODMAN[@]}" image unmount "$image" >/dev/null
	[[ $problems -eq 0 ]] && echo "  ok   no secrets, .dev/, .env, sources or build paths in the image files"
	return $((problems > 0))
}

main() {
	local names=("$@") name version revision created image start size failed=() summary=()
	[[ ${#names[@]} -gt 0 ]] || names=("${ALL_NAMES[@]}")
	for name in "${names[@]}"; do
		[[ " ${ALL_NAMES[*]} " == *" $name "* ]] || die "unknown image $name (known: ${ALL_NAMES[*]})"
	done

	# Rootless buildah would need `buildah unshare` around every mount; CI and the build
	# machines run as root.
	[[ $(id -u) -eq 0 ]] || die "run as root (daemonless builds with vfs storage and chroot isolation)"
	command -v go >/dev/null || die "go is needed (Go stand-in, module collection)"
	ensure_tools
	check_modules_listed
	ensure_bases

	version="$(git describe --always --dirty 2>/dev/null || echo dev)"
	revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
	created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	NEEDLES="$(mktemp)"
	trap 'rm -f "$NEEDLES"' EXIT
	secret_needles "$NEEDLES"

	for name in "${names[@]}"; do
		image="localhost/herald-$name:$version"
		log "building $image"
		start=$SECONDS
		# No --layers: with the vfs driver every cached layer is a full copy of the builder's
		# file system (Go toolchain and modules), which costs more than it saves.
		if ! "${BUILDAH[@]}" bud --isolation chroot --pull=never \
			-f "$DOCKERFILE" \
			--build-arg SERVICE="$name" \
			--build-arg VERSION="$version" \
			--build-arg REVISION="$revision" \
			--build-arg CREATED="$created" \
			-t "$image" -t "localhost/herald-$name:latest" \
			. >&2; then
			failed+=("$name")
			summary+=("$(printf '%-14s build FAILED after %ss' "$name" "$((SECONDS - start))")")
			[[ ${HERALD_IMAGES_KEEP_GOING:-} == 1 ]] || break
			continue
		fi
		size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$image" | numfmt --to=iec --suffix=B)"
		log "checking $image ($size, built in $((SECONDS - start))s)"
		if check_image "$name" "$image" "$NEEDLES"; then
			summary+=("$(printf '%-14s %-46s %6s  %4ss  ok' "$name" "$image" "$size" "$((SECONDS - start))")")
		else
			failed+=("$name")
			summary+=("$(printf '%-14s %-46s %6s  %4ss  CHECK FAILED' "$name" "$image" "$size" "$((SECONDS - start))")")
			[[ ${HERALD_IMAGES_KEEP_GOING:-} == 1 ]] || break
		fi
	done

	echo
	printf '%s\n' "${summary[@]}"
	if [[ ${#failed[@]} -gt 0 ]]; then
		die "failed: ${failed[*]}"
	fi
}

# Sourcing the file (to call one function) does not build anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
