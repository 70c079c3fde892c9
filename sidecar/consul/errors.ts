import { SidecarError, causeCode, errorMessage } from '../errors.js';

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

/**
 * The TLS handshake with the agent failed (`consul_tls_failed`): its certificate is not of the CA in
 * `tls.caFile` or does not name the address dialled, it refused this node's certificate (verify_incoming), or
 * one end speaks plain HTTP. Retrying changes nothing: the files or Consul's tls stanza need fixing.
 */
export class ConsulTlsFailed extends SidecarError {
  constructor(operation: string, reason: string) {
    super(
      'consul_tls_failed',
      `Consul ${operation} failed in TLS: ${reason}; Consul's tls stanza (consul-config/tls.hcl.tmpl) and the sidecar's tls section must name the same CA, its certificate the address in consul.url, and consul.url must be https:// on Consul's HTTPS port (8501)`,
      502,
    );
  }
}

/** HTTP 429: Consul's rate limit, a matter of waiting like an overloaded server, not a refusal. */
const TOO_MANY_REQUESTS = 429;

/** What a TLS failure's code means from the sidecar's side of the handshake. */
const TLS_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: "the agent's certificate has expired",
  CERT_NOT_YET_VALID: "the agent's certificate is not valid yet",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the agent's certificate is self-signed, not of tls.caFile's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "the agent's certificate is not of tls.caFile's CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the agent's certificate is not of tls.caFile's CA",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the agent's certificate is not of tls.caFile's CA",
  ERR_TLS_CERT_ALTNAME_INVALID: "the agent's certificate does not name the host in consul.url",
  ERR_SSL_WRONG_VERSION_NUMBER: 'the agent answers plain HTTP on that port',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: "the agent asks for a client certificate (verify_incoming) and got none: give the sidecar a tls section",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: "the agent refused this node's certificate (not of the CA in Consul's ca_file)",
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "the agent refused this node's certificate (not of the CA in Consul's ca_file)",
};

/** Consul's answer on its HTTPS port to a plain HTTP request (Go's net/http), the body of the package's error's `response`. */
const PLAIN_HTTP_TO_HTTPS = /Client sent an HTTP request to an HTTPS server/;

/**
 * The error a failed call of `operation` becomes: a TLS failure, a refusal for a 4xx answer, unavailable for
 * anything else.
 */
export function consulError(operation: string, cause: unknown): ConsulUnavailable | ConsulRefused | ConsulTlsFailed {
  const code = causeCode(cause);
  if (code !== undefined && Object.hasOwn(TLS_ERRORS, code)) return new ConsulTlsFailed(operation, `${TLS_ERRORS[code]} (${code})`);
  const status = (cause as { statusCode?: unknown } | null)?.statusCode;
  if (status === 400 && PLAIN_HTTP_TO_HTTPS.test(String((cause as { response?: { body?: unknown } }).response?.body ?? ''))) return new ConsulTlsFailed(operation, 'consul.url is http:// but the agent speaks HTTPS on that port');
  if (typeof status === 'number' && status >= 400 && status < 500 && status !== TOO_MANY_REQUESTS) return new ConsulRefused(operation, status, cause);
  return new ConsulUnavailable(operation, cause);
}
