#!/usr/bin/env bash
# Entrypoint of one ha-sidecar node container:
#   run (default)  render consul-config/ for this node, start Consul in the background, wait for a raft
#                  leader and make the sidecars' Consul token, then exec the sidecar in the foreground.
#   render         only write the files (Consul config dir, sidecar config, ACL policy, hactl's profile) and exit.
#   tls-init       make the cluster CA and every node's certificate into $HA_TLS_DIR unless it holds them
#                  already (docker-compose.yml's one-shot tls-init service); the CA key goes to $HA_TLS_CA_DIR.
#   tls-rotate [--days N]  renew every node's certificate in $HA_TLS_DIR, signed with $HA_TLS_CA_DIR/ca.key, one
#                  node at a time (`hactl cluster tls rotate`; docker-compose.yml's tls-rotate tool).
#   anything else  is run as a command (`docker run IMAGE bash`).
#
# TLS on every port, as `hactl local up` runs it: the sidecar API over HTTPS asking clients for a certificate,
# Postgres with ssl and hostssl-only pg_hba, Consul HTTPS-only on 8501 with verify_incoming/outgoing and
# verify_server_hostname, gossip encryption and ACLs default deny. Consul's gossip key, its management token
# and the sidecars' token are derived from the cluster token (dist/cli/container.js secrets), so the cluster
# token is the one secret to set.
#
# Environment (HA_SIDECAR_* are read by the sidecar itself too, so there is one source for each value):
#   HA_SIDECAR_NODE_NAME, HA_SIDECAR_ADDRESS   required: this node's name and IP (Consul binds to it as well)
#   CONSUL_SERVERS                             required: every server's IP, this one included (space/comma list)
#   HA_SIDECAR_CLUSTER_TOKEN                   required (16+ characters)
#   HA_SIDECAR_CLUSTER_NAME (main), HA_SIDECAR_DATA_DIR (/var/lib/ha-sidecar), HA_SIDECAR_CONSUL_URL (the
#   default is https://<address>:8501), CONSUL_DATACENTER (dc1), CONSUL_DATA_DIR (/var/lib/consul),
#   CONSUL_CLIENT_ADDR ("<address> 127.0.0.1"), CONSUL_WAIT_SECONDS (300),
#   HA_TLS_DIR (/etc/ha-sidecar/tls: ca.crt and <node>.crt/.key), HA_TLS_CA_DIR (/var/lib/ha-tls-ca, tls-init
#   and tls-rotate only), HA_TLS_NODES (tls-init and tls-rotate only: "n1=172.28.0.11 n2=..."),
#   HA_SIDECAR_USER (postgres: Postgres refuses to run as root, and it runs as the sidecar's child),
#   HA_SIDECAR_FIRST_NODE (the node that starts the cluster; unset: form it by hand with hactl).
set -euo pipefail

log() { echo "[entrypoint] $*" >&2; }
die() { log "error: $*"; exit 1; }

ROOT="${HA_SIDECAR_HOME:-/opt/ha-sidecar}"
TEMPLATE_DIR="${HA_TEMPLATE_DIR:-$ROOT/consul-config}"
CONSUL_CONFIG_DIR="${CONSUL_CONFIG_DIR:-/etc/consul.d}"
SIDECAR_CONFIG="${HA_SIDECAR_CONFIG:-/etc/ha-sidecar/sidecar.json}"
POLICY_FILE="${HA_SIDECAR_POLICY_FILE:-$(dirname "$SIDECAR_CONFIG")/sidecar-policy.hcl}"
SIDECAR_USER="${HA_SIDECAR_USER:-postgres}"
TLS_DIR="${HA_TLS_DIR:-/etc/ha-sidecar/tls}"
# The group that may read the node keys: the sidecar's user (and its Postgres) and Consul's (docker/Dockerfile).
TLS_GROUP="${HA_TLS_GROUP:-ha-tls}"
CONTAINER_JS="$ROOT/dist/cli/container.js"

# The cluster CA and the node certificates, once: a volume that holds them already (a second `up`) is left
# as it is. Made beside the CA key in $HA_TLS_CA_DIR (a volume only this service mounts), then the CA
# certificate and the nodes' files are copied into $TLS_DIR, ca.crt last: its presence means the rest is there.
# hactl's profile for this cluster: every node's API over HTTPS, the CA, a client certificate (the APIs ask
# for one) and the cluster token (so the file is 0600).
write_hactl_profile() { # write_hactl_profile FILE NAME TOKEN CA_FILE CERT_FILE KEY_FILE IP...
  node -e '
    const [file, name, token, caFile, certFile, keyFile, ...ips] = process.argv.slice(1);
    const profile = { managers: ips.map((ip) => `https://${ip}:8008`), token, tls: { caFile, certFile, keyFile } };
    const text = JSON.stringify({ current: name, profiles: { [name]: profile } }, null, 2) + "\n";
    require("node:fs").writeFileSync(file, text, { mode: 0o600 });
  ' "$@"
}

# A rotation from a container on the cluster network that mounts the tls volume (read-write) and the CA
# key's: the nodes read their new files from the same volume when rotate reloads them. It shows the API the
# first node's certificate (a client certificate of the cluster CA, as the nodes' own hactl does).
if [ "${1:-}" = tls-rotate ]; then
  shift
  : "${HA_TLS_NODES:?set HA_TLS_NODES (every node as name=address, space-separated)}"
  : "${HA_SIDECAR_CLUSTER_TOKEN:?set HA_SIDECAR_CLUSTER_TOKEN (the cluster token)}"
  read -r -a tls_nodes <<< "$HA_TLS_NODES"
  first="${tls_nodes[0]%%=*}"
  export HACTL_CONFIG_DIR; HACTL_CONFIG_DIR="$(mktemp -d)"
  write_hactl_profile "$HACTL_CONFIG_DIR/profiles.json" "${HA_SIDECAR_CLUSTER_NAME:-main}" "$HA_SIDECAR_CLUSTER_TOKEN" \
    "$TLS_DIR/ca.crt" "$TLS_DIR/$first.crt" "$TLS_DIR/$first.key" "${tls_nodes[@]#*=}"
  exec hactl cluster tls rotate --dir "$TLS_DIR" --ca-key "${HA_TLS_CA_DIR:-/var/lib/ha-tls-ca}/ca.key" "$@"
fi

if [ "${1:-}" = tls-init ]; then
  CA_DIR="${HA_TLS_CA_DIR:-/var/lib/ha-tls-ca}"
  : "${HA_TLS_NODES:?set HA_TLS_NODES (every node as name=address, space-separated)}"
  if [ -e "$TLS_DIR/ca.crt" ]; then log "$TLS_DIR holds the cluster's certificates already"; exit 0; fi
  read -r -a tls_nodes <<< "$HA_TLS_NODES"
  args=()
  for n in "${tls_nodes[@]}"; do args+=(--node "$n"); done
  # tls init moves all of its files in at once, so a CA there means a run that stopped before the copy.
  [ -e "$CA_DIR/ca.crt" ] || hactl cluster tls init --dir "$CA_DIR" --cluster-name "${HA_SIDECAR_CLUSTER_NAME:-main}" --consul-datacenter "${CONSUL_DATACENTER:-dc1}" "${args[@]}" >&2
  mkdir -p "$TLS_DIR"
  for n in "${tls_nodes[@]}"; do
    name="${n%%=*}"
    install -m 0644 -o root -g "$TLS_GROUP" "$CA_DIR/$name.crt" "$TLS_DIR/$name.crt"
    # 0640 root:ha-tls: readable by the sidecar and Consul, and Postgres takes a root-owned key with group read.
    install -m 0640 -o root -g "$TLS_GROUP" "$CA_DIR/$name.key" "$TLS_DIR/$name.key"
  done
  install -m 0644 -o root -g "$TLS_GROUP" "$CA_DIR/ca.crt" "$TLS_DIR/ca.crt"
  log "made the cluster CA (its key stays in $CA_DIR) and the certificates of ${tls_nodes[*]%%=*} in $TLS_DIR"
  exit 0
fi

: "${HA_SIDECAR_NODE_NAME:?set HA_SIDECAR_NODE_NAME (this node's name, e.g. n1)}"
: "${HA_SIDECAR_ADDRESS:?set HA_SIDECAR_ADDRESS (this node's IP on the cluster network)}"
: "${CONSUL_SERVERS:?set CONSUL_SERVERS (the IPs of every Consul server, this node included)}"
export HA_SIDECAR_CLUSTER_NAME="${HA_SIDECAR_CLUSTER_NAME:-main}"
export HA_SIDECAR_DATA_DIR="${HA_SIDECAR_DATA_DIR:-/var/lib/ha-sidecar}"
: "${HA_SIDECAR_CLUSTER_TOKEN:?set HA_SIDECAR_CLUSTER_TOKEN (16+ characters; HA_CLUSTER_TOKEN in docker-compose.yml)}"
# GOSSIP_KEY, ACL_MANAGEMENT_TOKEN and HA_SIDECAR_CONSUL_TOKEN, derived as the local cluster derives them.
secrets="$(node "$CONTAINER_JS" secrets)" || die "could not derive Consul's secrets from the cluster token (see above)"
eval "$secrets"

# The placeholders of consul-config/*.hcl.tmpl.
read -r -a servers <<< "${CONSUL_SERVERS//,/ }"
peers=()
for s in "${servers[@]}"; do [ "$s" = "$HA_SIDECAR_ADDRESS" ] || peers+=("\"$s\""); done
# bootstrap_expect counts this server, so a list without it would wait for a server that never comes.
[ ${#peers[@]} -lt ${#servers[@]} ] || die "CONSUL_SERVERS ($CONSUL_SERVERS) does not include HA_SIDECAR_ADDRESS ($HA_SIDECAR_ADDRESS)"
export NODE_NAME="$HA_SIDECAR_NODE_NAME"
export DATACENTER="${CONSUL_DATACENTER:-dc1}"
export DATA_DIR="${CONSUL_DATA_DIR:-/var/lib/consul}"
export BOOTSTRAP_EXPECT="${#servers[@]}"
export BIND_ADDR="$HA_SIDECAR_ADDRESS"
# The node address as in production, plus loopback so `docker exec nX consul members` works.
export CLIENT_ADDR="${CONSUL_CLIENT_ADDR:-$HA_SIDECAR_ADDRESS 127.0.0.1}"
export RETRY_JOIN="[$(IFS=,; echo "${peers[*]}")]"
export CLUSTER_NAME="$HA_SIDECAR_CLUSTER_NAME"
export TLS_CA_FILE="$TLS_DIR/ca.crt" TLS_CERT_FILE="$TLS_DIR/$HA_SIDECAR_NODE_NAME.crt" TLS_KEY_FILE="$TLS_DIR/$HA_SIDECAR_NODE_NAME.key"
CONFIG_DIR="$(dirname "$SIDECAR_CONFIG")"

# envsubst limited to the template's own placeholders, and each must have a value (as the local cluster's
# renderer insists): an empty bind_addr or retry_join would start a Consul that never forms a cluster.
render() { # render TEMPLATE OUT [MODE]
  local template="$TEMPLATE_DIR/$1" out="$2" vars var
  [ -f "$template" ] || die "template $template not found"
  vars="$(grep -o '\${[A-Z_][A-Z0-9_]*}' "$template" | sort -u | tr '\n' ' ')"
  for var in $vars; do
    var="${var#\$\{}"; var="${var%\}}"
    [ -n "${!var:-}" ] || die "${1} needs \$$var"
  done
  envsubst "$vars" < "$template" > "$out.tmp"
  chmod "${3:-0644}" "$out.tmp"
  mv "$out.tmp" "$out"
}

render_all() {
  mkdir -p "$CONSUL_CONFIG_DIR" "$CONFIG_DIR" "$(dirname "$POLICY_FILE")"
  rm -f "$CONSUL_CONFIG_DIR"/*.hcl # a file of an earlier image must not stay in force
  render server.hcl.tmpl "$CONSUL_CONFIG_DIR/server.hcl"
  render tls.hcl.tmpl "$CONSUL_CONFIG_DIR/tls.hcl"
  render encrypt.hcl.tmpl "$CONSUL_CONFIG_DIR/encrypt.hcl" 0640
  render acl.hcl.tmpl "$CONSUL_CONFIG_DIR/acl.hcl" 0640
  # Not agent config (Consul would reject it there): the rules for the sidecar's own ACL token.
  render sidecar-policy.hcl.tmpl "$POLICY_FILE"

  # A mounted config file wins; otherwise a minimal one. The cluster token and the sidecar's Consul token stay
  # in the environment only.
  if [ ! -e "$SIDECAR_CONFIG" ]; then
    node -e '
      const e = process.env;
      const config = {
        nodeName: e.HA_SIDECAR_NODE_NAME, clusterName: e.HA_SIDECAR_CLUSTER_NAME, address: e.HA_SIDECAR_ADDRESS,
        dataDir: e.HA_SIDECAR_DATA_DIR, postgres: { enabled: true },
        tls: { caFile: e.TLS_CA_FILE, certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE, verifyClient: true },
      };
      require("node:fs").writeFileSync(process.argv[1], JSON.stringify(config, null, 2) + "\n", { mode: 0o644 });
    ' "$SIDECAR_CONFIG"
  fi
  # The `consul` command in the container (the image's CONSUL_* environment): this node's certificate under
  # one name, and the management token (0600: ACLs deny everything without it).
  ln -sfn "$TLS_CERT_FILE" "$CONFIG_DIR/node.crt"
  ln -sfn "$TLS_KEY_FILE" "$CONFIG_DIR/node.key"
  (umask 077 && printf '%s\n' "$ACL_MANAGEMENT_TOKEN" > "$CONFIG_DIR/consul-management.token")
  # hactl in the container (`docker-compose exec n1 hactl cluster status`) gets a profile naming every node
  # over HTTPS, the CA, this node's certificate (the APIs ask for one) and the cluster token, so it works
  # without `hactl profiles use`. A mounted profiles file wins.
  if [ -n "${HACTL_CONFIG_DIR:-}" ] && [ ! -e "$HACTL_CONFIG_DIR/profiles.json" ]; then
    mkdir -p -m 0700 "$HACTL_CONFIG_DIR"
    write_hactl_profile "$HACTL_CONFIG_DIR/profiles.json" "$HA_SIDECAR_CLUSTER_NAME" "$HA_SIDECAR_CLUSTER_TOKEN" "$TLS_CA_FILE" "$TLS_CERT_FILE" "$TLS_KEY_FILE" "${servers[@]}"
  fi
}

# RUN_AS: the setpriv prefix that runs a command as USER when started as root (the image default), else
# as whoever we are (`docker run --user`).
run_as() {
  if [ "$(id -u)" = 0 ]; then
    RUN_AS=(setpriv --reuid "$1" --regid "$1" --init-groups)
  else
    RUN_AS=(setpriv)
  fi
}

case "${1:-run}" in
  render)
    render_all
    log "rendered $CONSUL_CONFIG_DIR ($(cd "$CONSUL_CONFIG_DIR" && echo *.hcl)), $SIDECAR_CONFIG and $POLICY_FILE"
    exit 0
    ;;
  run) ;;
  *) exec "$@" ;;
esac

render_all
# Consul has the secrets in its config files now; neither it nor the sidecar needs them in the environment.
unset GOSSIP_KEY ACL_MANAGEMENT_TOKEN
consul validate -quiet "$CONSUL_CONFIG_DIR" >/dev/null || die "the rendered Consul config in $CONSUL_CONFIG_DIR is invalid (see above)"
if [ "$(id -u)" = 0 ]; then
  # Fresh named volumes are root-owned when the image's ownership was not copied into them.
  mkdir -p "$DATA_DIR" "$HA_SIDECAR_DATA_DIR"
  chown consul:consul "$DATA_DIR" && chown "$SIDECAR_USER:$SIDECAR_USER" "$HA_SIDECAR_DATA_DIR"
  chmod 0700 "$DATA_DIR" "$HA_SIDECAR_DATA_DIR"
  if [ -n "${HA_SIDECAR_FILES_DIR:-}" ]; then mkdir -p "$HA_SIDECAR_FILES_DIR" && chown "$SIDECAR_USER:$SIDECAR_USER" "$HA_SIDECAR_FILES_DIR"; fi
  chgrp consul "$CONSUL_CONFIG_DIR"/*.hcl
fi

# --pdeathsig: Consul gets SIGTERM when its parent ends, and its parent is this shell, which becomes the
# sidecar by exec below. So Consul outlives the sidecar's graceful stop (which still needs it) and no more.
log "starting consul server $NODE_NAME on $BIND_ADDR (bootstrap_expect $BOOTSTRAP_EXPECT, retry_join $RETRY_JOIN)"
run_as consul
"${RUN_AS[@]}" --pdeathsig TERM -- consul agent -config-dir "$CONSUL_CONFIG_DIR" &
consul_pid=$!

# The sidecar gives up at once when Consul does not answer at start, and Consul has no leader until a
# quorum of servers has joined, so wait for one; then the sidecars' token exists (made by whichever node
# comes first, the others find it) before the sidecar starts with it.
node "$CONTAINER_JS" consul-ready "$SIDECAR_CONFIG" "$consul_pid" "${CONSUL_WAIT_SECONDS:-300}"

# The cluster forms itself, as `hactl local up` forms the local one: a node that is no member yet joins
# the leader once one of the nodes reports one, and HA_SIDECAR_FIRST_NODE starts the cluster while none
# does. A member (a restart, a data volume kept) does nothing. In the background, since the sidecar must run
# to be asked; its output goes to the container log.
if [ -n "${HA_SIDECAR_FIRST_NODE:-}" ]; then
  node "$CONTAINER_JS" form "$SIDECAR_CONFIG" "$HA_SIDECAR_FIRST_NODE" "${servers[@]}" &
fi

log "starting ha-sidecar $HA_SIDECAR_NODE_NAME as $SIDECAR_USER"
run_as "$SIDECAR_USER"
[ "$(id -u)" != 0 ] || export HOME="$(getent passwd "$SIDECAR_USER" | cut -d: -f6)"
exec "${RUN_AS[@]}" -- node "$ROOT/dist/sidecar/main.js" --config "$SIDECAR_CONFIG"
