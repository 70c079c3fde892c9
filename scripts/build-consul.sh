#!/usr/bin/env bash
# Builds a pinned Consul release from Go modules and caches it in .tools/consul/<version>-raft<raft>/consul.
# Consul is in neither Debian nor npm here, and `go install github.com/hashicorp/consul@vX` is refused
# because Consul's go.mod has replace directives. Building it as a dependency of a scratch module sidesteps
# that: the scratch module copies Consul's own go.mod (so every pin is reproduced exactly), drops the
# `./` replace block and requires Consul itself plus the submodule versions that tag needs.
set -euo pipefail

# v1.16.2: the newest MPL-2.0 release (BUSL-1.1 from v1.16.5 on) whose submodule pins resolve cleanly.
CONSUL_VERSION="${CONSUL_VERSION:-1.16.2}"
# hashicorp/raft v1.7.3 (MPL-2.0, the version Consul 1.22 ships) instead of 1.16.2's v1.5.0, for raft's
# pre-vote: a server that was cut off no longer comes back with a higher term and deposes the healthy raft
# leader, which made every sidecar's lease lapse and caused a second failover after each partition healed
# (docs/design.md "Under partitions and freezes", Healing). Consul 1.16.2 compiles against it unchanged.
RAFT_VERSION="1.7.3"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT_DIR="$ROOT/.tools/consul/$CONSUL_VERSION-raft$RAFT_VERSION"
OUT="$OUT_DIR/consul"

# Not `consul version | grep -q`: under pipefail, grep's early exit can SIGPIPE consul and fail the test.
if [ -x "$OUT" ] && grep -q "Consul v$CONSUL_VERSION" <<<"$("$OUT" version 2>/dev/null)"; then
  echo "consul v$CONSUL_VERSION (raft v$RAFT_VERSION) already built: $OUT"
  exit 0
fi

command -v go >/dev/null || { echo "build-consul: go not found on PATH; install Go >= 1.20" >&2; exit 1; }

case "$CONSUL_VERSION" in
  1.16.2) SUBMODULES="api@v1.25.1 envoyextensions@v0.4.1 proto-public@v0.4.1 sdk@v0.14.1 troubleshoot@v0.3.1" ;;
  *) echo "build-consul: no submodule pins recorded for Consul $CONSUL_VERSION" >&2; exit 1 ;;
esac

WORK="$ROOT/.tools/consul/build-$CONSUL_VERSION-raft$RAFT_VERSION"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
# The checksum database answers 404 for a few hashicorp submodules (seen for envoyextensions v0.4.1 and
# hcp-sdk-go v0.55.0) through the reachable proxy, so those are taken from the proxy unverified.
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GONOSUMDB="github.com/hashicorp/*"

echo "[consul] downloading github.com/hashicorp/consul@v$CONSUL_VERSION module metadata"
GOMOD="$(go mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$GOMOD" ] || { echo "build-consul: could not download Consul's go.mod" >&2; exit 1; }

# Consul's go.mod, renamed, without the replace block that points at ./api, ./sdk and friends.
sed -e 's#^module github.com/hashicorp/consul$#module consulbuild#' \
    -e '/^replace (/,/^)/d' -e '/^replace github.com\/hashicorp\/consul\//d' "$GOMOD" > go.mod
{
  echo "require github.com/hashicorp/consul v$CONSUL_VERSION"
  for m in $SUBMODULES; do echo "require github.com/hashicorp/consul/${m%@*} ${m#*@}"; done
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package consulbuild

import _ "github.com/hashicorp/consul"
GO

go mod edit -require "github.com/hashicorp/raft@v$RAFT_VERSION"
go list -m github.com/hashicorp/go-msgpack | grep -q 'v0.5.5' || { echo "build-consul: go-msgpack is not pinned at v0.5.5" >&2; exit 1; }

echo "[consul] downloading modules (about 1 GB on a first run, cached in $(go env GOMODCACHE)) and compiling (several minutes on 2 cores)"
start=$(date +%s)
mkdir -p "$OUT_DIR"
# go prints one "go: downloading" line per module: fold them into a count so the log stays readable.
go build -trimpath -o "$OUT.tmp" github.com/hashicorp/consul 2>&1 | awk '
  /^go: downloading/ { n++; if (n % 100 == 0) printf "[consul]   %d modules downloaded\n", n; next }
  { print }
  END { if (n) printf "[consul]   %d modules downloaded\n", n }'
[ -x "$OUT.tmp" ] || { echo "build-consul: go build failed (see above)" >&2; exit 1; }
mv "$OUT.tmp" "$OUT"
go version -m "$OUT" | grep -q "github.com/hashicorp/raft[[:space:]]*v$RAFT_VERSION" || { echo "build-consul: the binary does not carry raft v$RAFT_VERSION" >&2; exit 1; }
echo "[consul] built in $(( $(date +%s) - start )) s: $("$OUT" version | head -1), raft v$RAFT_VERSION"
cd "$ROOT" && rm -rf "$WORK"
