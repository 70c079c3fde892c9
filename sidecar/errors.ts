/**
 * Errors with a stable `code`. The API answers with `{ error: code, message }`, the CLI maps codes to exit
 * codes, and the logs carry the code, so callers test the code, never the message text.
 */
export class SidecarError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status the API answers with when this error reaches a client. */
    readonly status = 500,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'SidecarError';
  }
}

/*
 * Codes of snapshots (sidecar/snapshot/). Refusals change nothing: `unknown_snapshot` (404), `snapshot_invalid`
 * (400, not a readable archive or bad metadata), `snapshot_checksum_mismatch` (400, a part or the archive does
 * not match its sha256), `snapshot_newer_version` (400, written by a newer ha-sidecar major/minor),
 * `snapshot_busy` (409, another create or restore runs). Failures while working: `snapshot_failed`,
 * `snapshot_pull_failed` (a standby's copy from the leader).
 */
export const isSidecarError = (e: unknown): e is SidecarError => e instanceof SidecarError;

/** Message of any thrown value, for logs and one-line CLI errors. */
export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
