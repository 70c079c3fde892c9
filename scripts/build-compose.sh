#!/usr/bin/env bash
# Builds a pinned Docker Compose v2 CLI plugin (`docker compose`) from Go modules and caches it in
# .tools/compose/<version>/cli-plugins/docker-compose. Debian 12 packages only docker-compose 1.29; the
# compose test runs docker-compose.yml under both. Its directory is a DOCKER_CONFIG the tests pass to the
# docker client, which looks for plugins in $DOCKER_CONFIG/cli-plugins; a user links the binary into
# ~/.docker/cli-plugins instead (docs/operations.md "Docker").
# Does nothing when the binary is there, so setup can run it every time.
set -euo pipefail

# v5.6.0: the newest release that builds with Go 1.26 (the module is github.com/docker/compose/v5 from v5 on).
COMPOSE_VERSION="5.6.0"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="$ROOT/.tools/compose/v$COMPOSE_VERSION/cli-plugins"
OUT="$OUT_DIR/docker-compose"

# Not `| grep -q`: under pipefail, grep's early exit can SIGPIPE the binary and fail the check.
if [ -x "$OUT" ] && grep -q "v$COMPOSE_VERSION" <<<"$("$OUT" version 2>/dev/null)"; then
  echo "docker compose v$COMPOSE_VERSION already built: $OUT"
  exit 0
fi

command -v go >/dev/null || { echo "build-compose: go not found on PATH; install Go >= 1.26" >&2; exit 1; }

echo "[compose] downloading github.com/docker/compose/v5@v$COMPOSE_VERSION and its modules, compiling (minutes on 2 cores)"
start=$(date +%s)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
# `go install ...@version` refuses compose's go.mod (it has exclude directives). As for Consul
# (build-consul.sh), a scratch module takes compose's own go.mod and go.sum, so every pin and exclude is
# reproduced exactly, and requires compose itself.
GOMOD="$(go mod download -json "github.com/docker/compose/v5@v$COMPOSE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$GOMOD" ] || { echo "build-compose: could not download compose's go.mod" >&2; exit 1; }
sed -e 's#^module github.com/docker/compose/v5$#module composebuild#' "$GOMOD" > go.mod
echo "require github.com/docker/compose/v5 v$COMPOSE_VERSION" >> go.mod
cp "$(go env GOMODCACHE)/github.com/docker/compose/v5@v$COMPOSE_VERSION/go.sum" go.sum
export GOFLAGS="-mod=mod" CGO_ENABLED=0
# The version string is the one compose's Makefile stamps, so `docker compose version` names the release.
go build -trimpath -ldflags "-w -X github.com/docker/compose/v5/internal.Version=v$COMPOSE_VERSION" \
  -o "$WORK/docker-compose" github.com/docker/compose/v5/cmd 2>&1 | awk '
  /^go: downloading/ { n++; next }
  { print }
  END { if (n) printf "[compose]   %d modules downloaded\n", n }'
[ -x "$WORK/docker-compose" ] || { echo "build-compose: go build failed (see above)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
mv "$WORK/docker-compose" "$OUT"
echo "[compose] built in $(( $(date +%s) - start )) s: $("$OUT" version)"
