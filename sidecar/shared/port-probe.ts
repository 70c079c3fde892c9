import { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';

/**
 * One port of a peer checked from this node the way the real client reaches it: a TCP connect, then, where
 * the port speaks TLS, the handshake with this node's CA and certificate and one exchange of the port's own
 * protocol. A wrong CA, an expired or misnamed certificate, or a peer that refuses this node's certificate
 * shows up as `tls_failed`, not as a port that answers.
 */
export type PortResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'tls_failed' | 'bad_answer';

export interface PortAnswer {
  result: PortResult;
  /** Why it failed, as the socket or the peer said it; absent when `ok`. */
  detail?: string;
}

/**
 * - `tcp`: the connect is the check (Consul's RPC and gossip ports, a plain-text port).
 * - `https`: TLS, then `GET <path>`; any HTTP status line is an answer (the sidecar API: a peer that refuses
 *   this node's client certificate closes the connection instead, which TLS 1.3 reports only after the
 *   handshake, so the request is what proves it).
 * - `postgres`: Postgres' SSLRequest, TLS, then a startup message as `user` for replication; an
 *   authentication request is an answer, an error message (no pg_hba row) a `bad_answer`. The probe closes
 *   before authenticating, which Postgres does not log (it is what psql does before asking for a password).
 * - `tls`: the handshake alone (the file mirror's PSK, where the handshake proves both ends).
 */
export type PortProtocol =
  | { kind: 'tcp' }
  | { kind: 'https'; tls: ConnectionOptions; path: string }
  | { kind: 'postgres'; tls: ConnectionOptions; user: string }
  | { kind: 'tls'; tls: ConnectionOptions };

/** The port a URL connects to: its own, else the scheme's (443 for https:, 80 for http:). */
export const urlPort = (url: URL): number => Number(url.port || (url.protocol === 'https:' ? 443 : 80));

/** Postgres' SSLRequest: length 8, code 80877103 (protocol 1234.5679). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

function startupMessage(user: string): Buffer {
  const fields = Buffer.from(`user\0${user}\0database\0replication\0replication\0true\0\0`, 'utf8');
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + fields.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, fields]);
}

/** The text of a Postgres ErrorResponse's message field (`M`), or the whole packet's printable part. */
function postgresErrorText(packet: Buffer): string {
  const fields = packet.subarray(5).toString('utf8').split('\0');
  return fields.find((f) => f.startsWith('M'))?.slice(1) ?? fields.join(' ').trim();
}

const socketFailure = (e: NodeJS.ErrnoException): PortAnswer =>
  e.code === 'ECONNREFUSED' ? { result: 'refused', detail: e.code } : { result: 'unreachable', detail: e.code ?? e.message };

const tlsFailure = (e: NodeJS.ErrnoException): PortAnswer => ({ result: 'tls_failed', detail: e.code ? `${e.code}: ${e.message}` : e.message });

/** Checks `host:port` by `protocol` within `timeoutMs`; never throws. */
export function probePort(host: string, port: number, protocol: PortProtocol, timeoutMs: number): Promise<PortAnswer> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let secure: TLSSocket | undefined;
    let settled = false;
    const done = (answer: PortAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure?.destroy();
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done({ result: 'timeout', detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
    // After the handshake, an error or a close before the answer is the peer refusing this node.
    const handshake = (tls: ConnectionOptions, then: (s: TLSSocket) => void) => {
      let shook = false;
      secure = tlsConnect({ ...tls, socket, host });
      secure.once('secureConnect', () => {
        shook = true;
        then(secure!);
      });
      secure.on('error', (e: NodeJS.ErrnoException) => done(tlsFailure(e)));
      secure.once('close', () => done(shook ? { result: 'tls_failed', detail: 'the peer closed the connection after the handshake (does it refuse this node\'s certificate?)' } : { result: 'tls_failed', detail: 'the peer closed the connection during the handshake' }));
    };
    socket.once('error', (e: NodeJS.ErrnoException) => done(socketFailure(e)));
    socket.connect(port, host, () => {
      switch (protocol.kind) {
        case 'tcp':
          return done({ result: 'ok' });
        case 'tls':
          return handshake(protocol.tls, () => done({ result: 'ok' }));
        case 'https':
          return handshake(protocol.tls, (s) => {
            s.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('HTTP/1.') ? { result: 'ok' } : { result: 'bad_answer', detail: 'not an HTTP answer' }));
            s.write(`GET ${protocol.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
          });
        case 'postgres':
          socket.once('data', (chunk: Buffer) => {
            if (chunk[0] !== 0x53) return done({ result: 'bad_answer', detail: 'the server does not offer SSL (ssl = off?)' });
            handshake(protocol.tls, (s) => {
              s.once('data', (packet: Buffer) => {
                if (packet[0] === 0x52) return done({ result: 'ok' }); // AuthenticationRequest
                done({ result: 'bad_answer', detail: packet[0] === 0x45 ? postgresErrorText(packet) : `unexpected message ${String.fromCharCode(packet[0] ?? 32)}` });
              });
              s.write(startupMessage(protocol.user));
            });
          });
          socket.write(SSL_REQUEST);
          return;
      }
    });
  });
}

/** How long a checked connection may take to close after its end before it is dropped. */
const CLOSE_GRACE_MS = 1_000;

/**
 * The certificate `host:port` shows in a TLS handshake verified with `tls` (the CA, and the host named in it),
 * after Postgres' SSLRequest when `postgres`: what `hactl cluster tls rotate` waits on. Rejects with the
 * socket's or the handshake's error, or after `timeoutMs`.
 */
export function servedCertificate(host: string, port: number, postgres: boolean, tls: ConnectionOptions, timeoutMs: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let secure: TLSSocket | undefined;
    const done = (error: Error | null, certificate?: PeerCertificate) => {
      clearTimeout(timer);
      if (error) {
        secure?.destroy();
        socket.destroy();
        return reject(error);
      }
      // Ended, not destroyed: the handshake's last flight goes out, so the server sees a client that closed
      // (Postgres says nothing) rather than one gone mid-handshake ("could not accept SSL connection").
      secure!.end();
      setTimeout(() => secure!.destroy(), CLOSE_GRACE_MS).unref();
      resolve(certificate!);
    };
    const timer = setTimeout(() => done(new Error(`no handshake within ${timeoutMs} ms`)), timeoutMs);
    const handshake = () => {
      secure = tlsConnect({ ...tls, socket, host });
      secure.once('secureConnect', () => done(null, secure!.getPeerCertificate()));
      secure.once('error', (e) => done(e));
    };
    socket.once('error', (e) => done(e));
    socket.connect(port, host, () => {
      if (!postgres) return handshake();
      socket.once('data', (chunk: Buffer) => (chunk[0] === 0x53 ? handshake() : done(new Error('the server does not offer SSL (ssl = off?)'))));
      socket.write(SSL_REQUEST);
    });
  });
}
