import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { initClusterTls, type TlsFiles } from '../../cli/tls.js';
import { RenewableAgent, type ClientTls } from '../../sidecar/shared/https-fetch.js';

/** RenewableAgent: the Consul connection's agent, whose client certificate a reload replaces. */

let dir: string;
let files: TlsFiles;
let server: Server;
let port: number;

const read = (f: string) => readFileSync(f, 'utf8');
const clientTls = (node: 0 | 1): ClientTls => ({ ca: read(files.caFile), cert: read(files.nodes[node]!.certFile), key: read(files.nodes[node]!.keyFile) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'https-fetch-'));
  files = await initClusterTls(dir, 'test', [
    { name: 'n1', address: '127.0.0.1' },
    { name: 'n2', address: '127.0.0.1' },
  ]);
  // Answers with the subject of the client certificate it was shown, as Consul's verify_incoming checks one.
  server = createServer({ ...clientTls(0), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    res.end((req.socket as TLSSocket).getPeerCertificate().subject.CN);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const shownBy = (agent: RenewableAgent) =>
  new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, servername: 'n1' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () => resolve(body));
    });
    req.once('error', reject);
    req.end();
  });

describe('RenewableAgent', () => {
  it('shows the certificate it was given, and after renew the new one on its next connections', async () => {
    const agent = new RenewableAgent(clientTls(0));
    expect(await shownBy(agent)).toBe('n1');
    agent.renew(clientTls(1));
    agent.destroy(); // the kept connection would go on with its session: a new one shows the renewed certificate
    expect(await shownBy(agent)).toBe('n2');
    agent.destroy();
  });
});
