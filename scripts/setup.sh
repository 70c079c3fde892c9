#!/usr/bin/env bash
# Installs what ha-sidecar's local cluster and tests need, from nothing: PostgreSQL 15 server binaries,
# HAProxy, docker-compose and docker.io (the compose test), mmdebstrap (its stand-in base image), rsync (the mirror benchmark) and nftables (the fault suite) from Debian, and a pinned Consul and
# the `docker compose` v2 plugin (Debian 12 has none; the compose test runs both CLIs) built from Go modules.
# Does nothing that is already done, so it is cheap to run before every test run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

missing=()
[ -x /usr/lib/postgresql/15/bin/pg_rewind ] || missing+=(postgresql-15 postgresql-client-15)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v ip >/dev/null || missing+=(iproute2)
command -v setpriv >/dev/null || missing+=(util-linux)
# rsync: only `npm run bench`, which times the file mirror beside `rsync -a`.
command -v rsync >/dev/null || missing+=(rsync)
# nftables: the fault suite's cuts and loss inside each node's network namespace (`npm run faults`).
command -v nft >/dev/null || missing+=(nftables)
# docker.io: the compose test starts its own dockerd when no engine answers; mmdebstrap builds the local
# stand-in base image (scripts/docker-stand-ins.sh) where no image registry is reachable.
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing from Debian: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "[setup] need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The Debian postgresql package would start a default cluster on 5432; ha-sidecar runs its own instances.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if command -v pg_ctlcluster >/dev/null; then pg_ctlcluster 15 main stop 2>/dev/null || true; fi
fi

bash "$ROOT/scripts/build-consul.sh"
bash "$ROOT/scripts/build-compose.sh"
