import { Agent, request } from 'node:https';
import { Readable } from 'node:stream';

/**
 * `fetch` for the sidecar API over HTTPS with the cluster's CA (and a client certificate where the server asks
 * for one). Node's global fetch takes no CA of its own short of the undici package, so this one speaks through
 * node:https and hands back a standard `Response`; plain `http:` URLs go to the global fetch unchanged.
 */

/** PEM text of what a client of the sidecar API trusts and shows. */
export interface ClientTls {
  /** The cluster CA: the server's certificate must chain to it (and name the host dialled). */
  ca: string;
  /** A certificate of the cluster CA for servers with `verifyClient`, with its key. */
  cert?: string;
  key?: string;
}

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string, or a stream sent as it is read (an upload). */
  body?: string | Readable;
  signal?: AbortSignal;
}

export type FetchFunction = (url: string, init?: FetchOptions) => Promise<Response>;

/** The global fetch's form of `init`: a stream body goes as a web stream, sent while it is read. */
function globalInit(init: FetchOptions = {}): RequestInit & { duplex?: 'half' } {
  const { body, ...rest } = init;
  if (body === undefined || typeof body === 'string') return { ...rest, body };
  return { ...rest, body: Readable.toWeb(body) as unknown as BodyInit, duplex: 'half' };
}

/** Statuses whose `Response` must have no body. */
const NO_BODY = new Set([101, 204, 205, 304]);

/** An https agent that verifies servers against `tls.ca`, shows `tls.cert`, and keeps its connections. */
export function clientAgent(tls: ClientTls): Agent {
  return new Agent({ ca: tls.ca, cert: tls.cert, key: tls.key, keepAlive: true, minVersion: 'TLSv1.2' });
}

/**
 * `clientAgent` whose CA and certificate a reload replaces (`renew`): the connections it opens after that show
 * the new certificate; the ones it keeps go on with the session they have. For the Consul connection, which
 * one client holds for the process's life (blocking reads included), where the peers' fetch takes a new agent.
 * No TLS session cache: a resumed session would show the server the certificate of its first handshake (the
 * unit test saw it); the connections to the local agent are kept alive, so full handshakes stay rare.
 */
export class RenewableAgent extends Agent {
  constructor(private tls: ClientTls) {
    super({ keepAlive: true, minVersion: 'TLSv1.2', maxCachedSessions: 0 });
  }

  renew(tls: ClientTls): void {
    this.tls = tls;
  }

  override createConnection(...[options, callback]: Parameters<Agent['createConnection']>): ReturnType<Agent['createConnection']> {
    return super.createConnection({ ...options, ca: this.tls.ca, cert: this.tls.cert, key: this.tls.key }, callback);
  }
}

/** A fetch that verifies `https:` servers against `tls.ca`; without `tls`, the global fetch. */
export function httpsFetch(tls: ClientTls | undefined): FetchFunction {
  if (tls === undefined) return (url, init) => fetch(url, globalInit(init));
  // One agent per client: connections to a peer are kept and reused, as the global fetch does.
  const agent = clientAgent(tls);
  return (url, init = {}) => {
    if (!url.startsWith('https:')) return fetch(url, globalInit(init));
    return new Promise<Response>((resolve, reject) => {
      const req = request(url, { method: init.method ?? 'GET', headers: init.headers, agent, signal: init.signal }, (res) => {
        const headers = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string);
        const status = res.statusCode ?? 502;
        const empty = NO_BODY.has(status) || init.method === 'HEAD';
        if (empty) res.resume();
        resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers }));
      });
      req.once('error', reject);
      if (init.body instanceof Readable) init.body.once('error', (e) => req.destroy(e)).pipe(req);
      else req.end(init.body);
    });
  };
}

/**
 * The sidecar's fetch to its peers, whose certificate can be replaced while it runs (`hactl cluster reload`
 * after a renewal): calls made after `update` show the new certificate on new connections. Connections the
 * old agent keeps alive go on with the old one until the peer closes them as idle (a few seconds); the old
 * certificate is still valid then, so nothing fails meanwhile.
 */
export class PeerFetch {
  private current: FetchFunction;

  constructor(tls: ClientTls | undefined) {
    this.current = httpsFetch(tls);
  }

  readonly fetch: FetchFunction = (url, init) => this.current(url, init);

  update(tls: ClientTls): void {
    this.current = httpsFetch(tls);
  }
}
