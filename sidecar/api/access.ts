import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { SidecarError } from '../errors.js';
import { PROBES } from './probes.js';

/**
 * Who may call what on the API: the one place that rule lives.
 *
 * - The probes (`/leader`, `/replica`, `/health`, ... with GET, HEAD or OPTIONS) answer anyone: load balancers
 *   and Kubernetes read them without a token or a certificate, and they tell a status code and the node's own
 *   role, not the cluster's records.
 * - With TLS, everything else needs a client certificate of the cluster CA or the cluster token; with
 *   `verifyClient`, the certificate is required and the token alone is not enough. A certificate that does not
 *   chain to the CA is refused even beside a valid token.
 * - Without TLS (a trial), the rest reads without a token, as before TLS existed: the token would cross the
 *   network in the clear anyway.
 * - Operations (every route given `operate`) need the cluster token in every mode.
 */
export interface AccessPolicy {
  clusterToken: string;
  /** The API speaks HTTPS (the config's `tls` section). */
  tls: boolean;
  /** The config's `tls.verifyClient`. */
  verifyClient: boolean;
}

export interface AccessRules {
  /** Applied to every request before any route. */
  everyRequest: RequestHandler;
  /** The cluster token, on the routes that change something (or hand out secrets). */
  operate: RequestHandler;
}

const PROBE_PATHS = new Set(PROBES.map((name) => `/${name}`));
const PROBE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const isProbeRequest = (req: Pick<Request, 'method' | 'path'>): boolean => PROBE_METHODS.has(req.method) && PROBE_PATHS.has(req.path);

/** Constant-time comparison of the bearer token, so its value cannot be guessed from response times. */
function tokenMatcher(token: string): (req: Request) => boolean {
  const expected = Buffer.from(token);
  return (req) => {
    const given = Buffer.from((req.header('authorization') ?? '').replace(/^Bearer\s+/i, ''));
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
}

/** What the TLS layer found of the client's certificate: none, one of the CA, or one it refused (and why). */
function clientCertificate(req: Request): { state: 'none' } | { state: 'verified' } | { state: 'refused'; why: string } {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return { state: 'none' };
  if (socket.authorized === true) return { state: 'verified' };
  const presented = Object.keys(socket.getPeerCertificate()).length > 0;
  return presented ? { state: 'refused', why: String(socket.authorizationError ?? 'not verified') } : { state: 'none' };
}

export function accessRules(policy: AccessPolicy): AccessRules {
  const hasToken = tokenMatcher(policy.clusterToken);
  const everyRequest = (req: Request, _res: Response, next: NextFunction) => {
    if (!policy.tls || isProbeRequest(req)) return next();
    const certificate = clientCertificate(req);
    if (certificate.state === 'refused') {
      throw new SidecarError('client_certificate_rejected', `the client certificate is not one of the cluster CA (${certificate.why})`, 403);
    }
    if (certificate.state === 'verified') return next();
    if (policy.verifyClient) {
      throw new SidecarError('client_certificate_required', `${req.method} ${req.path} needs a client certificate of the cluster CA (tls.verifyClient is on); only the probes answer without one`, 401);
    }
    if (!hasToken(req)) {
      throw new SidecarError('unauthorized', `${req.method} ${req.path} needs the cluster token (Authorization: Bearer <token>) or a client certificate of the cluster CA`, 401);
    }
    next();
  };
  const operate = (req: Request, _res: Response, next: NextFunction) => {
    if (!hasToken(req)) throw new SidecarError('unauthorized', 'this call needs the cluster token: Authorization: Bearer <token>', 401);
    next();
  };
  return { everyRequest, operate };
}
