/**
 * Every error code ha-sidecar and hactl use, with its meaning and the exit code hactl ends with when a
 * command fails with it. Like the errors Consul's `api/lock.go` lists, a code is a named value callers test
 * for; the message is for people. `SidecarError` takes only these codes (a typo does not compile), the API
 * answers `{ error: <code>, message }`, hactl's `exitCodeFor` reads the exit column, and the logs' `code`
 * fields use the same names (tests/unit/error-codes.test.ts checks that every code in the sources is here).
 *
 * One line per code, in alphabetical order, so codes added on different branches merge as added lines.
 * Exit: 1 the operation failed, 2 usage or input error, 3 no reachable leader, 4 the cluster is degraded.
 * docs/error-codes.md lists this table; keep the two in step (tests/unit/error-codes.test.ts checks it).
 */

/** hactl's exit codes, the contract scripts rely on (docs/design.md "CLI"). */
export const HACTL_EXIT = { ok: 0, failed: 1, usage: 2, noLeader: 3, degraded: 4 } as const;
export type HactlExit = (typeof HACTL_EXIT)[keyof typeof HACTL_EXIT];

interface ErrorCodeInfo {
  /** Exit code of a hactl command that fails with this code. */
  exit: HactlExit;
  /** What happened, in one line. */
  meaning: string;
}

const { failed, usage, noLeader, degraded } = HACTL_EXIT;

export const ERROR_CODES = {
  address_unavailable: { exit: failed, meaning: 'hactl local: this machine has no such loopback address for a node' },
  already_leader: { exit: failed, meaning: 'switchover: the named target already leads' },
  already_member: { exit: failed, meaning: 'start or join: this node already belongs to a cluster' },
  already_running: { exit: failed, meaning: 'hactl local: the process to start already runs' },
  already_up: { exit: failed, meaning: 'hactl local up: the local cluster already runs' },
  apply_failed: { exit: failed, meaning: 'file mirror: a standby could not apply what the leader sent (log, metric)' },
  bad_answer: { exit: failed, meaning: 'hactl: a manager answered in an unexpected shape' },
  bad_guard_command: { exit: failed, meaning: 'write guard: a line on its input it does not understand' },
  bad_host: { exit: usage, meaning: 'hactl: a manager host that is empty or not a host[:port]' },
  bad_kv_value: { exit: failed, meaning: 'a value in Consul KV failed validation (ignored, or refused where it must be a term)' },
  bad_local_state: { exit: failed, meaning: "hactl local: the local cluster's state file is damaged" },
  bad_profile_file: { exit: failed, meaning: "hactl: the profiles file is not valid" },
  bad_request: { exit: failed, meaning: 'API: a request body or query that is not valid JSON or not of the expected shape' },
  bad_value: { exit: usage, meaning: 'an option or input value of the wrong form (a size, a number, a name)' },
  bad_version: { exit: failed, meaning: 'file mirror: the peer speaks another protocol version (refusal)' },
  basebackup_failed: { exit: failed, meaning: 'pg_basebackup (a clone) failed or could not reach the primary; the local data is as it was' },
  body_too_large: { exit: failed, meaning: 'API: a request body over 64 kB' },
  busy: { exit: failed, meaning: 'hactl local: another hactl is starting or stopping the local cluster' },
  candidate_behind: { exit: failed, meaning: 'failover without --force: the target is behind the last known primary position by behindBytes, or its position is unknown (409)' },
  candidate_not_ready: { exit: failed, meaning: 'switchover: no standby is fit to take over' },
  cannot_remove_leader: { exit: failed, meaning: 'remove: the leader cannot remove itself; switch over first' },
  client_certificate_rejected: { exit: failed, meaning: 'API with TLS: the client showed a certificate that does not chain to the cluster CA (403), whatever else it sent' },
  client_certificate_required: { exit: failed, meaning: 'API with tls.verifyClient: the call needs a client certificate of the cluster CA; only the probes answer without one (401)' },
  cluster_already_initialized: { exit: failed, meaning: 'cluster start: the cluster exists already; join it instead' },
  cluster_degraded: { exit: degraded, meaning: 'cluster status: a member is offline or unhealthy, or Consul is unreachable from the node that answered' },
  cluster_not_initialized: { exit: failed, meaning: 'cluster join: the cluster was never started' },
  consul_acl_denied: { exit: failed, meaning: "Consul refused a call (HTTP 401/403): the sidecar's token lacks a permission or is unknown" },
  consul_missing: { exit: failed, meaning: 'hactl local: no Consul binary to run' },
  consul_refused: { exit: failed, meaning: 'Consul refused a call with another 4xx answer' },
  consul_timing_unsafe: { exit: failed, meaning: "Consul's raft election timeout is too long for the lease (log)" },
  consul_tls_failed: { exit: failed, meaning: "the TLS handshake with the Consul agent failed: another CA, a certificate refused, or plain HTTP on one end" },
  consul_unavailable: { exit: failed, meaning: 'Consul did not answer: connection refused, timeout, or a server-side failure (5xx, no raft leader)' },
  failover_failed: { exit: failed, meaning: 'failover: another node took the lock (502)' },
  failover_timeout: { exit: failed, meaning: 'failover: the target did not serve writes within 45 s (504)' },
  files_catch_up_mismatch: { exit: failed, meaning: "file mirror: a standby's copy rebuilt from the changes since its position differs from the leader's manifest; it asks for the whole manifest (log)" },
  files_hash_mismatch: { exit: failed, meaning: "file mirror: received content does not match the leader's hash; discarded (log)" },
  files_local_edit: { exit: failed, meaning: "file mirror: local changes on a standby, overwritten by the leader's state (log)" },
  files_not_serving: { exit: failed, meaning: 'POST /files/sync: this node does not serve its files (not the leader, or its first scan runs), or stopped before a standby installed them (503)' },
  files_path_refused: { exit: failed, meaning: 'file mirror: an unsafe path (outside the root, a link, ...) was skipped (log)' },
  files_peer_refused: { exit: failed, meaning: 'file mirror: a peer failed the TLS handshake (wrong cluster key, or not TLS) (log)' },
  files_root_missing: { exit: failed, meaning: 'file mirror: the files directory is not a directory' },
  files_root_unmounted: { exit: failed, meaning: 'file mirror: the files directory is empty and on another device than before (unmounted?)' },
  files_sync_timeout: { exit: failed, meaning: 'POST /files/sync: no synchronous standby installed the files within 10 s, or a file was still being written (504)' },
  frame_bad_kind: { exit: failed, meaning: 'file mirror: a frame of an unknown kind' },
  frame_bad_message: { exit: failed, meaning: 'file mirror: a message frame that is not a valid message' },
  frame_oversized: { exit: failed, meaning: 'file mirror: a frame over the 4 MiB limit' },
  frame_truncated: { exit: failed, meaning: 'file mirror: the connection ended inside a frame' },
  guard_exited: { exit: failed, meaning: 'write guard: the guard process went away (log)' },
  guard_input_closed: { exit: failed, meaning: 'write guard: its input closed while armed; it enforces the last deadline (log)' },
  guard_killed_postgres: { exit: failed, meaning: 'write guard: the lease ran out unconfirmed, so it killed postgres (log)' },
  guard_lost: { exit: failed, meaning: 'write guard: lost for good; the node steps down (log)' },
  guard_release_failed: { exit: failed, meaning: 'write guard: its sidecar died but it could not stop postgres or release the session; the session dies by its alive check, with lock-delay (log)' },
  guard_released_session: { exit: failed, meaning: 'write guard: its sidecar died; it killed postgres, released the lock and destroyed the session (log)' },
  guard_unavailable: { exit: failed, meaning: 'write guard: not running or did not arm' },
  hello_timeout: { exit: failed, meaning: 'file mirror: a peer sent no hello in time (log, metric)' },
  https_required: { exit: failed, meaning: 'API with TLS: a plain-HTTP request on the HTTPS port, answered 400 and closed (log, once per client address)' },
  initdb_failed: { exit: failed, meaning: 'initdb failed (often: the PostgreSQL user cannot write the data directory)' },
  internal_error: { exit: failed, meaning: 'an unexpected failure, a bug: the message says where' },
  interrupted: { exit: failed, meaning: 'hactl local: interrupted (Ctrl-C) while waiting' },
  invalid_config: { exit: failed, meaning: 'the sidecar configuration (file, environment, Postgres settings) is invalid; ha-sidecar exits 2' },
  invalid_state: { exit: failed, meaning: "the Postgres intent file next to the data directory is damaged" },
  leader_exists: { exit: failed, meaning: 'failover: a leader holds the lock (409); a switchover is what moves a leader' },
  leader_silent: { exit: failed, meaning: 'file mirror: no word from the leader for too long; reconnecting (log, metric)' },
  listen_failed: { exit: failed, meaning: 'the API could not listen on its address' },
  local_cluster_differs: { exit: failed, meaning: 'hactl local: the existing local cluster was made with other options' },
  local_state_save_failed: { exit: failed, meaning: "hactl local: cannot write the local cluster's state file" },
  no_leader: { exit: noLeader, meaning: 'no leader is elected right now' },
  no_managers: { exit: failed, meaning: 'hactl: the profile lists no managers' },
  no_members: { exit: failed, meaning: 'hactl: the cluster lists no members to check' },
  no_profile: { exit: usage, meaning: 'hactl: no current profile; run "hactl profiles use <host>"' },
  no_reachable_leader: { exit: noLeader, meaning: 'hactl: no manager answered as the cluster leader' },
  no_reachable_manager: { exit: noLeader, meaning: 'hactl: no manager answered at all' },
  no_standby: { exit: failed, meaning: 'dsn: no standby streams from the leader right now' },
  node_not_empty: { exit: failed, meaning: 'join: the node holds Postgres data or files a join would replace; back them up, then --force' },
  node_running: { exit: failed, meaning: 'remove: the node is still running; stop its sidecar first' },
  node_unreachable: { exit: failed, meaning: 'a node gave no answer to a call meant for it' },
  not_cluster_leader: { exit: failed, meaning: 'API: this node is not the leader; the answer names the leader when there is one' },
  not_found: { exit: failed, meaning: 'API: no such endpoint' },
  not_leader: { exit: failed, meaning: 'file mirror: the peer no longer leads (refusal)' },
  not_member: { exit: failed, meaning: 'health: this node has not started or joined a cluster' },
  not_running: { exit: failed, meaning: 'hactl local: the process to stop or crash is not running' },
  not_up: { exit: failed, meaning: 'hactl local: there is no local cluster' },
  openssl_failed: { exit: failed, meaning: 'hactl cluster tls: the openssl command failed; nothing was written' },
  operation_failed: { exit: failed, meaning: 'hactl: a restart or reinit failed; the message has the node\'s status line' },
  operation_in_progress: { exit: failed, meaning: 'a restart or reinit of this node\'s Postgres is still running (409)' },
  operation_interrupted: { exit: failed, meaning: 'hactl: the sidecar closed a streamed answer before the operation finished; see cluster status' },
  operation_timeout: { exit: failed, meaning: 'hactl: a restart or reinit still runs when hactl stops waiting' },
  port_check_failed: { exit: failed, meaning: 'hactl local: cannot test whether a port is free' },
  port_in_use: { exit: failed, meaning: 'an address and port needed is taken by another process' },
  ports_unreachable: { exit: failed, meaning: "hactl: a member's ports do not answer" },
  postgres_data_exists: { exit: failed, meaning: 'the data directory holds data this node did not initialise as a primary; move it away' },
  postgres_disabled: { exit: failed, meaning: 'this cluster runs without Postgres' },
  postgres_exited: { exit: failed, meaning: 'postgres exited without being asked to (log)' },
  postgres_missing: { exit: failed, meaning: 'hactl local: no PostgreSQL binaries found (or start with --no-postgres)' },
  postgres_no_data: { exit: failed, meaning: 'postgres has no data directory yet: initialise or clone it first' },
  postgres_not_primary: { exit: failed, meaning: 'initPrimary found postgres running as a standby' },
  postgres_not_running: { exit: failed, meaning: 'postgres is not running (cannot promote)' },
  postgres_reload_failed: { exit: failed, meaning: 'a reload did not take effect in time' },
  postgres_start_failed: { exit: failed, meaning: 'postgres exited while starting; the message ends with its log' },
  postgres_start_timeout: { exit: failed, meaning: 'postgres does not accept connections 60 s after start (left running)' },
  postgres_stop_failed: { exit: failed, meaning: 'postgres survived SIGKILL' },
  postgres_unavailable: { exit: failed, meaning: 'postgres runs but does not answer' },
  primary_not_permitted: { exit: failed, meaning: 'postgres is not started or promoted as a primary: this node holds no lock with a valid lease' },
  process_exited: { exit: failed, meaning: "hactl local or a compose node's entrypoint: a process of the cluster it waits on (Consul, a sidecar) exited" },
  profile_save_failed: { exit: failed, meaning: 'hactl: cannot write the profiles file' },
  promote_failed: { exit: failed, meaning: 'postgres did not come up as a writable primary on the new leader' },
  promote_timeout: { exit: failed, meaning: 'postgres does not take writes 60 s after promotion' },
  reinit_leader_refused: { exit: failed, meaning: 'reinit: refused on the leader, whose data every other node clones (409)' },
  request_failed: { exit: failed, meaning: 'hactl local: a node refused a call without naming a code' },
  rewind_failed: { exit: failed, meaning: 'pg_rewind failed or its source is unreachable; the node is cloned again' },
  rewind_same_timeline: { exit: failed, meaning: "a former primary is on its new leader's timeline ID with another history: pg_rewind cannot help, it is cloned again (log)" },
  rewind_source_not_primary: { exit: failed, meaning: 'the rewind source is still promoting; the rewind is postponed' },
  send_failed: { exit: failed, meaning: 'file mirror: sending a file to a standby failed (log, metric)' },
  server_certificate_rejected: { exit: failed, meaning: "hactl: no manager answered, and the certificate of at least one was refused (expired, not of the profile's CA, or not naming its host)" },
  sidecar_not_built: { exit: failed, meaning: 'hactl local: dist/ is missing; run npm run build' },
  snapshot_busy: { exit: failed, meaning: 'snapshot: another create or restore runs on the leader (409)' },
  snapshot_checksum_mismatch: { exit: usage, meaning: 'snapshot restore or download: a part or the archive does not match its sha256 (400); nothing changed' },
  snapshot_failed: { exit: failed, meaning: 'snapshot create or restore failed while working; the message says at which step' },
  snapshot_invalid: { exit: usage, meaning: 'snapshot restore: not a readable snapshot archive, or bad metadata (400); nothing changed' },
  snapshot_newer_version: { exit: usage, meaning: 'snapshot restore: written by a newer ha-sidecar major/minor (400); nothing changed' },
  snapshot_pull_failed: { exit: failed, meaning: 'snapshot: a standby could not copy a snapshot from the leader (log; retried)' },
  spawn_failed: { exit: failed, meaning: 'hactl local: a process could not be started' },
  stale_term: { exit: failed, meaning: 'file mirror: the peer has seen a newer term than the leader (refusal)' },
  start_timeout: { exit: failed, meaning: "hactl local or a compose node's entrypoint: timed out waiting for the cluster (Consul's raft leader, the ACL token, the members) to come up" },
  startup_failed: { exit: failed, meaning: 'ha-sidecar could not start for a reason without its own code' },
  stdout_failed: { exit: failed, meaning: 'hactl could not write its output' },
  stop_failed: { exit: failed, meaning: 'hactl local: a process survived SIGKILL' },
  switchover_failed: { exit: failed, meaning: 'switchover: the target could not take over; the old leader leads again' },
  switchover_timeout: { exit: failed, meaning: 'switchover: no new leader serves writes in time' },
  system_identifier_mismatch: { exit: failed, meaning: "a clone or rewind source belongs to another database system; this node's data is kept" },
  tls_ca_mismatch: { exit: usage, meaning: "hactl cluster tls rotate: --dir's ca.key is not the key of its ca.crt, a member's certificate there (or the one it serves on its API or Postgres port) is not of that CA, or it has a SAN rotate cannot carry over; nothing changed" },
  tls_certificate_expired: { exit: failed, meaning: "ha-sidecar: the node's certificate (tls.certFile) has expired; it does not start (exit 2)" },
  tls_certificate_expiring: { exit: failed, meaning: "the node's certificate expires within 30 days (or has expired): run hactl cluster tls rotate (log, once a day; cluster status warns)" },
  tls_certificate_invalid: { exit: failed, meaning: 'ha-sidecar: a tls file holds no PEM certificate or key, the certificate is not signed by tls.caFile, not valid yet, or the key is not its own; it does not start (exit 2), and a reload (409) keeps the certificate every port uses' },
  tls_exists: { exit: failed, meaning: 'hactl cluster tls init: the directory already holds a CA or node certificate; nothing changed' },
  tls_file_unreadable: { exit: failed, meaning: "a file of the sidecar's tls section (it does not start, exit 2) or of a hactl profile's tls is missing or cannot be read" },
  tls_files_missing: { exit: usage, meaning: 'hactl cluster tls rotate: --dir is not a directory, or lacks ca.crt, the CA key (ca.key, or --ca-key) or a member\'s certificate or key; nothing changed' },
  tls_handshake_failed: { exit: failed, meaning: 'API with TLS: a client gave up on the handshake (it does not trust the certificate) or sent no TLS (log, debug)' },
  tls_rotate_failed: { exit: failed, meaning: 'hactl cluster tls rotate: a node did not take its new certificate (the reload failed, or it did not serve it on its API and Postgres ports within 30 s); the nodes before it are rotated, it has its new files, the rest keep their old ones' },
  unauthorized: { exit: failed, meaning: 'API: the call needs the cluster token (with TLS, reads take a client certificate of the CA instead)' },
  unknown_node: { exit: failed, meaning: 'no member (or local node) of that name' },
  unknown_profile: { exit: usage, meaning: 'hactl: no profile of that name' },
  unknown_snapshot: { exit: usage, meaning: 'snapshot: no snapshot with that id on the node asked (404); nothing changed' },
  usage_error: { exit: usage, meaning: 'a command line hactl or ha-sidecar does not understand' },
  wrong_node: { exit: failed, meaning: "a call for another node reached this node's API" },
  wrong_role: { exit: failed, meaning: 'dsn: the named member does not have the asked role' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A code of the table. */
export type ErrorCode = keyof typeof ERROR_CODES;

export const isErrorCode = (text: string): text is ErrorCode => Object.hasOwn(ERROR_CODES, text);

declare const answered: unique symbol;
/**
 * A code another process answered with (an API body's `error`, or `http_<status>` for an answer without one):
 * one of the table when this build knows it, otherwise kept as received, since a newer server may know more.
 */
export type AnsweredCode = ErrorCode | (string & { readonly [answered]: true });
export const answeredCode = (text: string): AnsweredCode => text as AnsweredCode;

/** hactl's exit code for a failure with `code`: the table's, 1 for a code this build does not know. */
export function hactlExitFor(code: AnsweredCode): HactlExit {
  return isErrorCode(code) ? ERROR_CODES[code].exit : HACTL_EXIT.failed;
}
