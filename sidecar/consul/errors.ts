import { SidecarError, errorMessage } from '../errors.js';

/**
 * How a Consul call failed, so the logs, the API and hactl tell "Consul did not answer" (retry, check the
 * agent and the network) from "Consul answered no" (fix the token or the request: retrying changes nothing).
 */

/** No answer: connection refused or reset, a timeout, or a server-side failure (5xx, e.g. no raft leader; 429). */
export class ConsulUnavailable extends SidecarError {
  constructor(operation: string, cause: unknown) {
    super('consul_unavailable', `Consul ${operation} failed: ${errorMessage(cause)}`, 503);
  }
}

/** Consul answered and refused: 401/403 (`consul_acl_denied`: the token lacks a permission or is unknown) or another 4xx (`consul_refused`). */
export class ConsulRefused extends SidecarError {
  constructor(operation: string, httpStatus: number, cause: unknown) {
    const denied = httpStatus === 401 || httpStatus === 403;
    super(
      denied ? 'consul_acl_denied' : 'consul_refused',
      denied
        ? `Consul ${operation} denied (HTTP ${httpStatus}: ${errorMessage(cause)}): the sidecar's Consul token lacks a permission of consul-config/sidecar-policy.hcl, or Consul does not know it`
        : `Consul ${operation} refused (HTTP ${httpStatus}: ${errorMessage(cause)})`,
      502,
      { httpStatus },
    );
  }
}

/** HTTP 429: Consul's rate limit, a matter of waiting like an overloaded server, not a refusal. */
const TOO_MANY_REQUESTS = 429;

/** The error a failed call of `operation` becomes: a refusal for a 4xx answer, unavailable for anything else. */
export function consulError(operation: string, cause: unknown): ConsulUnavailable | ConsulRefused {
  const status = (cause as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500 && status !== TOO_MANY_REQUESTS) return new ConsulRefused(operation, status, cause);
  return new ConsulUnavailable(operation, cause);
}
