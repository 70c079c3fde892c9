import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { checkMembers, peerFailures, portFailures, renderPeerMatrix, renderPortMatrix, tcpCheck, type MemberView, type PortResult } from '../../cli/validate.js';

let server: Server;
let openPort: number;
let closedPort: number;

beforeAll(async () => {
  server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  openPort = (server.address() as AddressInfo).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('hactl cluster validate', () => {
  it('tcpCheck: a listening port is ok, a closed one refused', async () => {
    expect(await tcpCheck('127.0.0.1', openPort)).toBe('ok');
    expect(await tcpCheck('127.0.0.1', closedPort)).toBe('refused');
  });

  it('checks Postgres only where the member runs it, the mirror only where it publishes files', async () => {
    const asked: string[] = [];
    const check = async (host: string, port: number): Promise<PortResult> => {
      asked.push(`${host}:${port}`);
      return host === '10.0.0.2' && port === 8008 ? 'refused' : 'ok';
    };
    const rows = await checkMembers(
      [
        { name: 'n1', address: '10.0.0.1', pgRole: 'primary', files: { state: 'synced' } },
        { name: 'n2', address: '10.0.0.2', pgRole: 'standby' },
        { name: 'n3', address: '10.0.0.3' },
      ],
      check,
    );
    expect(asked.sort()).toEqual(
      ['10.0.0.1:8300', '10.0.0.1:8301', '10.0.0.1:8500', '10.0.0.1:8008', '10.0.0.1:15432', '10.0.0.1:22000', '10.0.0.2:8300', '10.0.0.2:8301', '10.0.0.2:8500', '10.0.0.2:8008', '10.0.0.2:15432', '10.0.0.3:8300', '10.0.0.3:8301', '10.0.0.3:8500', '10.0.0.3:8008'].sort(),
    );
    expect(renderPortMatrix(rows).slice(0, 4)).toEqual([
      'NODE  ADDRESS   8300  8301  8500  8008     15432  22000',
      'n1    10.0.0.1  ok    ok    ok    ok       ok     ok',
      'n2    10.0.0.2  ok    ok    ok    refused  ok     -',
      'n3    10.0.0.3  ok    ok    ok    ok       -      -',
    ]);
    expect(portFailures(rows)).toEqual(['n2:8008 (sidecar API) refused']);
  });

  it("follows a TLS member's Consul to its HTTPS port, 8501", async () => {
    const asked: string[] = [];
    const rows = await checkMembers([{ name: 'n1', address: '10.0.0.1', apiUrl: 'https://10.0.0.1:8008' }], async (host, port) => {
      asked.push(`${host}:${port}`);
      return port === 8501 ? 'refused' : 'ok';
    });
    expect(asked).toContain('10.0.0.1:8501');
    expect(asked).not.toContain('10.0.0.1:8500');
    expect(renderPortMatrix(rows)[0]).toBe('NODE  ADDRESS   8300  8301  8501     8008  15432  22000');
    expect(renderPortMatrix(rows)).toContain('8501: Consul HTTP API');
    expect(portFailures(rows)).toEqual(['n1:8501 (Consul HTTP API) refused']);
  });

  it('the member-to-member matrix: ok, the failed ports, - for itself, ? for a member that could not be asked', () => {
    const port = (p: number, what: string, result = 'ok', detail?: string) => ({ port: p, what, result, ...(detail ? { detail } : {}) });
    const healthy = (name: string, address: string) => ({ name, address, ports: [port(8300, 'Consul server RPC'), port(8008, 'sidecar API'), port(15432, 'PostgreSQL')] });
    const views: MemberView[] = [
      { from: 'n1', answer: { node: 'n1', peers: [healthy('n2', '10.0.0.2'), { ...healthy('n3', '10.0.0.3'), ports: [port(8300, 'Consul server RPC'), port(15432, 'PostgreSQL', 'tls_failed', 'CERT_HAS_EXPIRED: certificate has expired')] }] } },
      { from: 'n2', answer: { node: 'n2', peers: [healthy('n1', '10.0.0.1')] } },
      { from: 'n3', error: 'n3: timeout' },
    ];
    expect(renderPeerMatrix(views)).toEqual([
      'FROM \\ TO  n1  n2  n3',
      'n1         -   ok  15432',
      'n2         ok  -   not seen',
      'n3         ?   ?   -',
    ]);
    expect(peerFailures(views)).toEqual([
      'n1 -> n3:15432 (PostgreSQL): tls_failed: CERT_HAS_EXPIRED: certificate has expired',
      "n2 -> n3: not in n2's member list",
      'n3: could not be asked (n3: timeout)',
    ]);
  });
});
