import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { initClusterTls, type TlsFiles } from '../../cli/tls.js';
import { isProbeRequest } from '../../sidecar/api/access.js';
import { PROBES } from '../../sidecar/api/probes.js';
import { createApi, listen, type ApiBackend, type ApiServer } from '../../sidecar/api/server.js';
import { createLogger } from '../../sidecar/log.js';
import { httpsFetch, type ClientTls } from '../../sidecar/shared/https-fetch.js';

/**
 * The API's access rule (sidecar/api/access.ts) and its HTTPS listener, on a real HTTPS server on 127.0.0.1
 * with certificates from `hactl cluster tls init`, the backend a stub: who reads a probe, who reads /cluster,
 * who may operate, and what a plain-HTTP client is told.
 */

const TOKEN = 'api-access-token-0123456789';
let dir: string;
let ours: TlsFiles;
let theirs: TlsFiles;
const servers: ApiServer[] = [];
const log = createLogger({ node: 'n1', role: 'test', term: 0 }, 'error');

const backend = {
  probe: () => Promise.resolve({ ok: true, body: { role: 'leader' } }),
  cluster: () => Promise.resolve({ members: ['n1'] }),
  assertLeader: () => undefined,
  patchConfig: () => Promise.resolve({ paused: true }),
} as unknown as ApiBackend;

const pem = (file: string) => readFileSync(file, 'utf8');
const client = (files: TlsFiles, node?: number): ClientTls => ({
  ca: pem(ours.caFile),
  ...(node !== undefined ? { cert: pem(files.nodes[node]!.certFile), key: pem(files.nodes[node]!.keyFile) } : {}),
});

async function start(mode: { tls: boolean; verifyClient: boolean }): Promise<string> {
  const n1 = ours.nodes[0]!;
  const tls = mode.tls ? { cert: pem(n1.certFile), key: pem(n1.keyFile), ca: pem(ours.caFile) } : undefined;
  const server = await listen(createApi(backend, { clusterToken: TOKEN, ...mode }, log), '127.0.0.1', 0, log, tls);
  servers.push(server);
  return `${mode.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`;
}

async function get(fetchWith: ClientTls | undefined, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; error?: string }> {
  const res = await httpsFetch(fetchWith)(url, { method, headers, signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { error?: string };
  return { status: res.status, ...(body.error !== undefined ? { error: body.error } : {}) };
}
const bearer = { authorization: `Bearer ${TOKEN}` };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'api-access-'));
  ours = await initClusterTls(join(dir, 'ours'), 'ours', [{ name: 'n1', address: '127.0.0.1' }, { name: 'hactl', address: '127.0.0.1' }]);
  theirs = await initClusterTls(join(dir, 'theirs'), 'theirs', [{ name: 'n1', address: '127.0.0.1' }]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe('isProbeRequest', () => {
  it('every probe path with GET, HEAD or OPTIONS, nothing else', () => {
    for (const name of PROBES) for (const method of ['GET', 'HEAD', 'OPTIONS']) expect(isProbeRequest({ method, path: `/${name}` })).toBe(true);
    expect(isProbeRequest({ method: 'POST', path: '/leader' })).toBe(false);
    expect(isProbeRequest({ method: 'GET', path: '/cluster' })).toBe(false);
    expect(isProbeRequest({ method: 'GET', path: '/leader/x' })).toBe(false);
  });
});

describe('the API over HTTPS with verifyClient', () => {
  let url: string;
  beforeAll(async () => (url = await start({ tls: true, verifyClient: true })));

  it('a client without the CA fails the handshake; with it the probes answer without token or certificate', async () => {
    await expect(httpsFetch({ ca: pem(theirs.caFile) })(`${url}/leader`)).rejects.toMatchObject({ code: expect.stringMatching(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/) });
    await expect(get(client(ours), `${url}/leader`)).resolves.toEqual({ status: 200 });
  });

  it('reads need a certificate of the CA: the token alone is not enough, a certificate of another CA is refused', async () => {
    await expect(get(client(ours), `${url}/cluster`)).resolves.toEqual({ status: 401, error: 'client_certificate_required' });
    await expect(get(client(ours), `${url}/cluster`, bearer)).resolves.toEqual({ status: 401, error: 'client_certificate_required' });
    await expect(get(client(ours, 1), `${url}/cluster`)).resolves.toEqual({ status: 200 });
    await expect(get(client(theirs, 0), `${url}/cluster`, bearer)).resolves.toEqual({ status: 403, error: 'client_certificate_rejected' });
  });

  it('operations need the token besides the certificate', async () => {
    await expect(get(client(ours, 1), `${url}/pause`, {}, 'POST')).resolves.toEqual({ status: 401, error: 'unauthorized' });
    await expect(get(client(ours, 1), `${url}/pause`, bearer, 'POST')).resolves.toEqual({ status: 200 });
  });

  it('a plain-HTTP request is answered 400 https_required and closed; the server goes on serving', async () => {
    const plain = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      request(url.replace('https:', 'http:') + '/leader', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject).end();
    });
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body)).toMatchObject({ error: 'https_required', message: expect.stringContaining('https://127.0.0.1:') });
    // Garbage that looks like a handshake, then a connection that sends nothing and goes away.
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port), rejectUnauthorized: false });
      socket.on('error', () => resolve()).on('close', () => resolve());
      socket.destroy();
    });
    await expect(get(client(ours), `${url}/leader`)).resolves.toEqual({ status: 200 });
  });
});

describe('the API over HTTPS without verifyClient', () => {
  it('reads take the token or a certificate of the CA; the probes neither', async () => {
    const url = await start({ tls: true, verifyClient: false });
    await expect(get(client(ours), `${url}/cluster`)).resolves.toEqual({ status: 401, error: 'unauthorized' });
    await expect(get(client(ours), `${url}/cluster`, bearer)).resolves.toEqual({ status: 200 });
    await expect(get(client(ours, 1), `${url}/cluster`)).resolves.toEqual({ status: 200 });
    await expect(get(client(theirs, 0), `${url}/cluster`, bearer)).resolves.toEqual({ status: 403, error: 'client_certificate_rejected' });
    await expect(get(client(ours), `${url}/replica`)).resolves.toEqual({ status: 200 });
  });
});

describe('the API without TLS (a trial)', () => {
  it('reads answer without a token, as before TLS; operations need it', async () => {
    const url = await start({ tls: false, verifyClient: false });
    await expect(get(undefined, `${url}/cluster`)).resolves.toEqual({ status: 200 });
    await expect(get(undefined, `${url}/pause`, {}, 'POST')).resolves.toEqual({ status: 401, error: 'unauthorized' });
  });
});

describe('a renewed certificate (setTls, on POST /postgres/reload)', () => {
  it('new handshakes get the new certificate, client certificates are still asked for and checked', async () => {
    const n1 = ours.nodes[0]!;
    const server = await listen(createApi(backend, { clusterToken: TOKEN, tls: true, verifyClient: true }, log), '127.0.0.1', 0, log, { cert: pem(n1.certFile), key: pem(n1.keyFile), ca: pem(ours.caFile) });
    servers.push(server);
    const url = `https://127.0.0.1:${server.port}`;
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: server.port, ca: pem(ours.caFile) }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        }).on('error', reject);
      });
    const serialOf = (file: string) => new X509Certificate(pem(file)).serialNumber;
    expect(await servedSerial()).toBe(serialOf(n1.certFile));
    // hactl's certificate names 127.0.0.1 too: it stands in for n1's renewal.
    const renewed = ours.nodes[1]!;
    server.setTls!({ cert: pem(renewed.certFile), key: pem(renewed.keyFile), ca: pem(ours.caFile) });
    expect(await servedSerial()).toBe(serialOf(renewed.certFile));
    await expect(get(client(ours, 1), `${url}/cluster`)).resolves.toEqual({ status: 200 });
    await expect(get(client(ours), `${url}/cluster`, bearer)).resolves.toEqual({ status: 401, error: 'client_certificate_required' });
    await expect(get(client(theirs, 0), `${url}/cluster`, bearer)).resolves.toEqual({ status: 403, error: 'client_certificate_rejected' });
  });

  it('a plain-HTTP server has none', async () => {
    const server = await listen(createApi(backend, { clusterToken: TOKEN, tls: false, verifyClient: false }, log), '127.0.0.1', 0, log);
    servers.push(server);
    expect(server.setTls).toBeNull();
  });
});
