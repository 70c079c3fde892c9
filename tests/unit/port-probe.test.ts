import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initClusterTls, type TlsFiles } from '../../cli/tls.js';
import { probePort } from '../../sidecar/shared/port-probe.js';

/** probePort against real sockets on 127.0.0.1: plain TCP, HTTPS with the cluster CA, and Postgres' SSLRequest. */

let dir: string;
let ours: TlsFiles;
let theirs: TlsFiles;
const servers: (Server | HttpsServer)[] = [];

const pem = (file: string) => readFileSync(file, 'utf8');
const node = (files: TlsFiles, i = 0) => ({ cert: pem(files.nodes[i]!.certFile), key: pem(files.nodes[i]!.keyFile), ca: pem(files.caFile) });

const sockets = new Set<Socket>();

async function listening<T extends Server | HttpsServer>(server: T): Promise<number> {
  servers.push(server);
  // Kept to be destroyed at the end: close() waits for open connections (the one that says nothing).
  server.on('connection', (s: Socket) => sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** An HTTPS server with `files`' n1 certificate that asks clients for a certificate of the same CA. */
function httpsServer(files: TlsFiles): HttpsServer {
  return createHttpsServer({ ...node(files), requestCert: true, rejectUnauthorized: true }, (_req, res) => res.end('ok'));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-probe-'));
  ours = await initClusterTls(join(dir, 'ours'), 'ours', [{ name: 'n1', address: '127.0.0.1' }, { name: 'n2', address: '127.0.0.2' }]);
  theirs = await initClusterTls(join(dir, 'theirs'), 'theirs', [{ name: 'n1', address: '127.0.0.1' }]);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  rmSync(dir, { recursive: true, force: true });
});

describe('probePort', () => {
  it('tcp: a listening port is ok, a closed one refused', async () => {
    const open = await listening(createServer((s) => s.destroy()));
    expect(await probePort('127.0.0.1', open, { kind: 'tcp' }, 1_000)).toEqual({ result: 'ok' });
    expect(await probePort('127.0.0.1', await closedPort(), { kind: 'tcp' }, 1_000)).toEqual({ result: 'refused', detail: 'ECONNREFUSED' });
  });

  it('https: the handshake with the CA and a client certificate, then an HTTP answer', async () => {
    const port = await listening(httpsServer(ours));
    const path = '/liveness';
    expect(await probePort('127.0.0.1', port, { kind: 'https', tls: node(ours, 1), path }, 2_000)).toEqual({ result: 'ok' });
  });

  it("https: a server of another CA, or one that refuses this node's certificate, is tls_failed with the reason", async () => {
    const foreign = await listening(httpsServer(theirs));
    const answer = await probePort('127.0.0.1', foreign, { kind: 'https', tls: node(ours, 1), path: '/' }, 2_000);
    expect(answer).toEqual({ result: 'tls_failed', detail: expect.stringMatching(/^UNABLE_TO_VERIFY_LEAF_SIGNATURE|^SELF_SIGNED_CERT_IN_CHAIN|unable to (get|verify)/) });

    const ourServer = await listening(httpsServer(ours));
    const refused = await probePort('127.0.0.1', ourServer, { kind: 'https', tls: { ...node(theirs), ca: pem(ours.caFile) }, path: '/' }, 2_000);
    expect(refused.result).toBe('tls_failed');
  });

  it('https: a certificate that names another host fails the identity check', async () => {
    // n2's certificate names n2 and 127.0.0.2, not 127.0.0.1.
    const port = await listening(createHttpsServer({ ...node(ours, 1) }, (_req, res) => res.end('ok')));
    expect(await probePort('127.0.0.1', port, { kind: 'https', tls: node(ours), path: '/' }, 2_000)).toEqual({ result: 'tls_failed', detail: expect.stringContaining('ERR_TLS_CERT_ALTNAME_INVALID') });
  });

  it('postgres: a server that answers N to the SSLRequest offers no SSL', async () => {
    const port = await listening(createServer((s) => s.once('data', () => s.write('N'))));
    expect(await probePort('127.0.0.1', port, { kind: 'postgres', tls: node(ours), user: 'replicator' }, 2_000)).toEqual({ result: 'bad_answer', detail: 'the server does not offer SSL (ssl = off?)' });
  });

  it('a port that accepts and then says nothing times out', async () => {
    const port = await listening(createServer(() => undefined));
    expect(await probePort('127.0.0.1', port, { kind: 'postgres', tls: node(ours), user: 'replicator' }, 300)).toEqual({ result: 'timeout', detail: 'no answer within 300 ms' });
  });
});
