#!/usr/bin/env bash
# Builds the local stand-ins for the official images docker/Dockerfile and docker-compose.yml pull
# (node:20-bookworm-slim, golang, haproxy:2.8), for a machine that reaches Debian's mirror but no image
# registry. docker/stand-in.env names them; `docker-compose --env-file docker/stand-in.env up -d --build`
# uses them (docs/operations.md "Docker").
#   ha-sidecar-base:bookworm   Debian 12 minbase with every package the Dockerfile installs, HAProxy, and
#                              this machine's Node 20 and npm (in /usr/local, where the node image has them)
#   ha-sidecar-node:local      that base plus this machine's npm cache, npm set offline (builds need no network)
#   ha-sidecar-consul-build:local  that base plus the pinned Consul this project already built
#                              (.tools/consul, scripts/build-consul.sh), where build-consul.sh finds it: the
#                              Dockerfile's Consul stage runs the same script, which then compiles nothing
# The root file system is cached as a tarball under HA_DOCKER_CACHE (/var/tmp/ha-sidecar-docker), keyed by
# this script, the Node binary and the Consul binary; the images are re-made only when their key changed.
# The engine is whichever DOCKER_HOST names. Needs root (mmdebstrap) on the first run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${HA_DOCKER_CACHE:-/var/tmp/ha-sidecar-docker}"
BASE_IMAGE=ha-sidecar-base:bookworm
log() { echo "[stand-ins] $*" >&2; }
die() { log "error: $*"; exit 1; }

NODE_BIN="$(readlink -f "$(command -v node)")"
NPM_DIR="$(dirname "$NODE_BIN")/../lib/node_modules/npm"
[ -f "$NPM_DIR/bin/npm-cli.js" ] || die "npm not found beside $NODE_BIN (looked in $NPM_DIR)"
"$NODE_BIN" -e 'process.exit(process.versions.node.split(".")[0] === "20" ? 0 : 1)' || die "$NODE_BIN is not Node 20 (the image's major)"
# The pinned binary, built (once) by setup; the second call only names it.
bash "$ROOT/scripts/build-consul.sh" >/dev/null
CONSUL_BIN="$(bash "$ROOT/scripts/build-consul.sh" | sed -n 's/.* already built: //p')"
[ -x "$CONSUL_BIN" ] || die "no built Consul (scripts/build-consul.sh)"
CONSUL_PIN="$(basename "$(dirname "$CONSUL_BIN")")"

# Every package the Dockerfile's node stage installs, plus HAProxy (the haproxy:2.8 stand-in).
PACKAGES=postgresql-15,postgresql-common,gettext-base,util-linux,tini,haproxy,libstdc++6

build_rootfs() { # build_rootfs OUT
  # The package's default cluster is dropped: the sidecar runs its own instance on 15432 (as in the
  # Dockerfile, which keeps postgresql-common from creating it).
  mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='chroot "$1" sh -c "pg_dropcluster 15 main 2>/dev/null || true"' \
    --customize-hook='sed -ri "s/#(create_main_cluster) .*$/\1 = false/" "$1/etc/postgresql-common/createcluster.conf"' \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules\" && cp -a '$NODE_BIN' \"\$1/usr/local/bin/node\" && cp -a '$NPM_DIR' \"\$1/usr/local/lib/node_modules/npm\"" \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
    --customize-hook='chroot "$1" node --version' \
    bookworm "$1" http://deb.debian.org/debian
}

key="$({ declare -f build_rootfs; echo "$PACKAGES"; sha256sum < "$NODE_BIN"; } | sha256sum | cut -c1-16)"
tarball="$CACHE/base-$key.tar"
mkdir -p "$CACHE"
if [ ! -s "$tarball" ]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found (npm run setup installs it)"
  [ "$(id -u)" = 0 ] || die "building the base root file system needs root (mmdebstrap)"
  log "building $tarball from Debian bookworm (minbase + $PACKAGES) and $NODE_BIN"
  start=$(date +%s)
  build_rootfs "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  log "built in $(( $(date +%s) - start )) s ($(du -h "$tarball" | cut -f1))"
  # Older keys' tarballs are dead weight.
  find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
fi

label() { docker image inspect -f '{{ index .Config.Labels "ha-sidecar.stand-in-key" }}' "$1" 2>/dev/null || true; }

if [ "$(label "$BASE_IMAGE")" != "$key" ]; then
  log "importing $BASE_IMAGE"
  docker import \
    --change "LABEL ha-sidecar.stand-in-key=$key" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
fi

# derive IMAGE KEY LINE... : an image FROM the base with the Dockerfile LINEs, built from $context
# (COPY only: no network needed), unless it already carries KEY.
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
derive() {
  local image="$1" key="$2"; shift 2
  [ "$(label "$image")" != "$key" ] || return 0
  log "building $image"
  printf '%s\n' "FROM $BASE_IMAGE" "$@" "LABEL ha-sidecar.stand-in-key=$key" > "$context/Dockerfile"
  docker build -q --network none -t "$image" "$context" >/dev/null
}

# The Consul stage's stand-in: /src is that stage's WORKDIR, where build-consul.sh looks for .tools/consul/<pin>.
cp "$CONSUL_BIN" "$context/consul"
derive ha-sidecar-consul-build:local "$key-$(sha256sum < "$CONSUL_BIN" | cut -c1-16)" \
  "COPY consul /src/.tools/consul/$CONSUL_PIN/consul"

# The node stage's stand-in: the base plus this machine's npm cache, with npm set offline, so the
# Dockerfile's `npm install` takes the lock file's packages from it (an optional package the cache lacks,
# such as another platform's binding, is skipped as when it does not apply).
NPM_CACHE="$(npm config get cache)/_cacache"
[ -d "$NPM_CACHE" ] || die "no npm cache at $NPM_CACHE (run npm install in the project first)"
cp -a "$NPM_CACHE" "$context/_cacache"
printf 'offline=true\n' > "$context/npmrc"
derive ha-sidecar-node:local "$key-$(cat "$ROOT/package-lock.json" "$ROOT/package.json" | sha256sum | cut -c1-16)" \
  "COPY _cacache /root/.npm/_cacache" "COPY npmrc /usr/local/etc/npmrc"
log "ready: $BASE_IMAGE, ha-sidecar-node:local, ha-sidecar-consul-build:local (Consul $CONSUL_PIN)"
