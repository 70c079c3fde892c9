#!/usr/bin/env bash
# Entrypoint of one ha-sidecar node container:
#   run (default)  render consul-config/ for this node, start Consul in the background, wait for a raft
#                  leader, then exec the sidecar in the foreground.
#   render         only write the files (Consul config dir, sidecar config, ACL policy) and exit.
#   anything else  is run as a command (`docker run IMAGE bash`).
#
# Environment (HA_SIDECAR_* are read by the sidecar itself too, so there is one source for each value):
#   HA_SIDECAR_NODE_NAME, HA_SIDECAR_ADDRESS   required: this node's name and IP (Consul binds to it as well)
#   CONSUL_SERVERS                             required: every server's IP, this one included (space/comma list)
#   HA_SIDECAR_CLUSTER_TOKEN                   required by the sidecar (16+ characters)
#   HA_SIDECAR_CLUSTER_NAME (main), HA_SIDECAR_DATA_DIR (/var/lib/ha-sidecar), HA_SIDECAR_CONSUL_URL,
#   HA_SIDECAR_CONSUL_TOKEN, CONSUL_DATACENTER (dc1), CONSUL_DATA_DIR (/var/lib/consul),
#   CONSUL_CLIENT_ADDR ("<address> 127.0.0.1"), GOSSIP_KEY and ACL_MANAGEMENT_TOKEN (optional: the
#   matching consul-config template is rendered only when set), CONSUL_WAIT_SECONDS (300),
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

: "${HA_SIDECAR_NODE_NAME:?set HA_SIDECAR_NODE_NAME (this node's name, e.g. n1)}"
: "${HA_SIDECAR_ADDRESS:?set HA_SIDECAR_ADDRESS (this node's IP on the cluster network)}"
: "${CONSUL_SERVERS:?set CONSUL_SERVERS (the IPs of every Consul server, this node included)}"
export HA_SIDECAR_CLUSTER_NAME="${HA_SIDECAR_CLUSTER_NAME:-main}"
export HA_SIDECAR_DATA_DIR="${HA_SIDECAR_DATA_DIR:-/var/lib/ha-sidecar}"
export HA_SIDECAR_CONSUL_URL="${HA_SIDECAR_CONSUL_URL:-http://$HA_SIDECAR_ADDRESS:8500}"

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
export GOSSIP_KEY="${GOSSIP_KEY:-}" ACL_MANAGEMENT_TOKEN="${ACL_MANAGEMENT_TOKEN:-}"

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
  mkdir -p "$CONSUL_CONFIG_DIR" "$(dirname "$SIDECAR_CONFIG")" "$(dirname "$POLICY_FILE")"
  rm -f "$CONSUL_CONFIG_DIR"/*.hcl # a secret removed from the environment must not stay in force
  render server.hcl.tmpl "$CONSUL_CONFIG_DIR/server.hcl"
  if [ -n "$GOSSIP_KEY" ]; then render encrypt.hcl.tmpl "$CONSUL_CONFIG_DIR/encrypt.hcl" 0640; fi
  if [ -n "$ACL_MANAGEMENT_TOKEN" ]; then render acl.hcl.tmpl "$CONSUL_CONFIG_DIR/acl.hcl" 0640; fi
  # Not agent config (Consul would reject it there): the rules for the sidecar's own ACL token.
  render sidecar-policy.hcl.tmpl "$POLICY_FILE"

  # A mounted config file wins; otherwise a minimal one. The cluster token stays in the environment only.
  if [ ! -e "$SIDECAR_CONFIG" ]; then
    node -e '
      const e = process.env;
      const config = {
        nodeName: e.HA_SIDECAR_NODE_NAME, clusterName: e.HA_SIDECAR_CLUSTER_NAME, address: e.HA_SIDECAR_ADDRESS,
        dataDir: e.HA_SIDECAR_DATA_DIR, consul: { url: e.HA_SIDECAR_CONSUL_URL }, postgres: { enabled: true },
      };
      require("node:fs").writeFileSync(process.argv[1], JSON.stringify(config, null, 2) + "\n", { mode: 0o644 });
    ' "$SIDECAR_CONFIG"
  fi
  # hactl in the container (`docker-compose exec n1 hactl cluster status`) gets a profile naming every node
  # and the cluster token, so it works without `hactl profiles use`. A mounted profiles file wins.
  if [ -n "${HACTL_CONFIG_DIR:-}" ] && [ ! -e "$HACTL_CONFIG_DIR/profiles.json" ]; then
    mkdir -p -m 0700 "$HACTL_CONFIG_DIR"
    node -e '
      const [file, name, token, ...ips] = process.argv.slice(1);
      const profile = { managers: ips.map((ip) => `http://${ip}:8008`), ...(token ? { token } : {}) };
      const text = JSON.stringify({ current: name, profiles: { [name]: profile } }, null, 2) + "\n";
      require("node:fs").writeFileSync(file, text, { mode: 0o600 }); // it holds the cluster token
    ' "$HACTL_CONFIG_DIR/profiles.json" "$HA_SIDECAR_CLUSTER_NAME" "${HA_SIDECAR_CLUSTER_TOKEN:-}" "${servers[@]}"
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
consul validate -quiet "$CONSUL_CONFIG_DIR" >/dev/null || die "the rendered Consul config in $CONSUL_CONFIG_DIR is invalid (see above)"
if [ "$(id -u)" = 0 ]; then
  # Fresh named volumes are root-owned when the image's ownership was not copied into them.
  mkdir -p "$DATA_DIR" "$HA_SIDECAR_DATA_DIR"
  chown consul:consul "$DATA_DIR" && chown "$SIDECAR_USER:$SIDECAR_USER" "$HA_SIDECAR_DATA_DIR"
  chmod 0700 "$DATA_DIR" "$HA_SIDECAR_DATA_DIR"
  if [ -n "${HA_SIDECAR_FILES_DIR:-}" ]; then mkdir -p "$HA_SIDECAR_FILES_DIR" && chown "$SIDECAR_USER:$SIDECAR_USER" "$HA_SIDECAR_FILES_DIR"; fi
  chgrp consul "$CONSUL_CONFIG_DIR"/*.hcl
fi
if [ -n "$ACL_MANAGEMENT_TOKEN" ] && [ -z "${HA_SIDECAR_CONSUL_TOKEN:-}" ]; then
  log "warning: Consul ACLs are on but HA_SIDECAR_CONSUL_TOKEN is empty; create the sidecar's token with"
  log "  consul acl policy create -name ha-sidecar -rules @$POLICY_FILE && consul acl token create -policy-name ha-sidecar"
fi

# --pdeathsig: Consul gets SIGTERM when its parent ends, and its parent is this shell, which becomes the
# sidecar by exec below. So Consul outlives the sidecar's graceful stop (which still needs it) and no more.
log "starting consul server $NODE_NAME on $BIND_ADDR (bootstrap_expect $BOOTSTRAP_EXPECT, retry_join $RETRY_JOIN)"
run_as consul
"${RUN_AS[@]}" --pdeathsig TERM -- consul agent -config-dir "$CONSUL_CONFIG_DIR" &
consul_pid=$!

# The sidecar gives up at once when Consul does not answer at start, and Consul has no leader until a
# quorum of servers has joined, so wait for one (as seen on the URL the sidecar uses).
log "waiting up to ${CONSUL_WAIT_SECONDS:-300} s for a Consul raft leader at $HA_SIDECAR_CONSUL_URL"
node -e '
  const [url, seconds, pid] = process.argv.slice(1);
  const deadline = Date.now() + Number(seconds) * 1000;
  (async () => {
    for (let turn = 1; ; turn++) {
      try { process.kill(Number(pid), 0); } catch { console.error("[entrypoint] error: consul exited (see its log above)"); process.exit(1); }
      try {
        const res = await fetch(url + "/v1/status/leader", { signal: AbortSignal.timeout(2000) });
        const leader = res.ok ? await res.json() : "";
        if (leader) { console.error(`[entrypoint] consul raft leader: ${leader}`); return; }
      } catch { /* not up yet */ }
      if (Date.now() > deadline) { console.error(`[entrypoint] error: no Consul raft leader after ${seconds} s: are the other servers up?`); process.exit(1); }
      if (turn % 15 === 0) console.error("[entrypoint] still no Consul raft leader (needs a quorum of the servers)");
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
' "$HA_SIDECAR_CONSUL_URL" "${CONSUL_WAIT_SECONDS:-300}" "$consul_pid"

# The cluster forms itself, as `hactl local up` forms the local one: a node that is no member yet joins
# the leader once one of the nodes reports one, and HA_SIDECAR_FIRST_NODE starts the cluster while none
# does. A member (a restart, a data volume kept) does nothing. In the background, since the sidecar must run
# to be asked; its output goes to the container log.
if [ -n "${HA_SIDECAR_FIRST_NODE:-}" ]; then
  node -e '
    const { execFileSync } = require("node:child_process");
    const [self, name, first, ...ips] = process.argv.slice(1);
    const get = (url) => fetch(url, { signal: AbortSignal.timeout(3000) }).then((r) => r.json(), () => ({})).catch(() => ({}));
    const hactl = (...args) => { try { console.error(execFileSync("hactl", args, { encoding: "utf8" }).trim()); return true; } catch (e) { console.error(`[entrypoint] hactl ${args[1]}: ${String(e.stderr ?? e).trim()}`); return false; } };
    (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 2000));
        const health = await get(`${self}/health`);
        if (health.role !== undefined && health.error !== "not_member") return; // a member already
        if (health.error !== "not_member") continue; // the sidecar is not up yet
        let leader;
        for (const ip of ips) leader ??= (await get(`http://${ip}:8008/cluster`)).leader?.apiUrl ?? undefined;
        if (leader && leader !== self) { if (hactl("cluster", "join", leader, "--node-name", name, "--node-url", self)) return; }
        else if (!leader && name === first) { if (hactl("cluster", "start", "--node-name", name, "--node-url", self)) return; }
      }
    })();
  ' "http://$HA_SIDECAR_ADDRESS:8008" "$HA_SIDECAR_NODE_NAME" "$HA_SIDECAR_FIRST_NODE" "${servers[@]}" &
fi

# With ACLs on and the sidecar's token given, the token exists with the policy of $POLICY_FILE before the
# sidecar starts: created here with that secret by whichever node comes first (the others find it).
if [ -n "$ACL_MANAGEMENT_TOKEN" ] && [ -n "${HA_SIDECAR_CONSUL_TOKEN:-}" ]; then
  node -e '
    const [url, management, secret, policyFile] = process.argv.slice(1);
    const rules = require("node:fs").readFileSync(policyFile, "utf8");
    const call = (method, path, token, body) =>
      fetch(url + path, { method, headers: { "X-Consul-Token": token }, body: body && JSON.stringify(body), signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => 0);
    (async () => {
      for (let turn = 0; turn < 60; turn++) {
        if ((await call("GET", "/v1/acl/token/self", secret)) === 200) { console.error("[entrypoint] the sidecar Consul token is in place"); return; }
        await call("PUT", "/v1/acl/policy", management, { Name: "ha-sidecar", Rules: rules });
        await call("PUT", "/v1/acl/token", management, { SecretID: secret, Description: "ha-sidecar", Policies: [{ Name: "ha-sidecar" }] });
        await new Promise((r) => setTimeout(r, 1000));
      }
      console.error("[entrypoint] error: could not create the sidecar Consul token"); process.exit(1);
    })();
  ' "$HA_SIDECAR_CONSUL_URL" "$ACL_MANAGEMENT_TOKEN" "$HA_SIDECAR_CONSUL_TOKEN" "$POLICY_FILE"
fi

log "starting ha-sidecar $HA_SIDECAR_NODE_NAME as $SIDECAR_USER"
run_as "$SIDECAR_USER"
[ "$(id -u)" != 0 ] || export HOME="$(getent passwd "$SIDECAR_USER" | cut -d: -f6)"
exec "${RUN_AS[@]}" -- node "$ROOT/dist/sidecar/main.js" --config "$SIDECAR_CONFIG"
