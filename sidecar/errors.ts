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

export const isSidecarError = (e: unknown): e is SidecarError => e instanceof SidecarError;

/** Message of any thrown value, for logs and one-line CLI errors. */
export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
