import type { AnsweredCode } from './error-codes.js';

export { answeredCode, ERROR_CODES, isErrorCode, type AnsweredCode, type ErrorCode } from './error-codes.js';

/**
 * Errors with a stable `code` from the table in error-codes.ts. The API answers with `{ error: code, message }`,
 * the CLI maps codes to exit codes, and the logs carry the code, so callers test the code, never the message
 * text. A code answered by another process enters through `answeredCode`.
 */
export class SidecarError extends Error {
  constructor(
    readonly code: AnsweredCode,
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

/** The system or library code (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, ...) of an error or of one of its causes (fetch wraps them). */
export function causeCode(e: unknown): string | undefined {
  let cause: unknown = e;
  for (let depth = 0; depth < 4 && cause !== undefined && cause !== null; depth += 1) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}
