import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HealthProbe } from '../../sidecar/manager/health.js';

/** The manager health probe against a real HTTP server on loopback: what each answer (or none) reads as. */

let server: Server;
let url: string;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
let connections = 0;

beforeAll(async () => {
  server = createServer((req, res) => handle(req, res));
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  connections = 0;
  server.closeAllConnections();
});

describe('HealthProbe', () => {
  it('a 2xx is healthy, and the probes share one kept connection', async () => {
    handle = (_req, res) => res.end('ok');
    const probe = new HealthProbe(url, 1_000, 1_000);
    for (let i = 0; i < 3; i++) expect(await probe.check()).toEqual({ healthy: true, detail: 'HTTP 200', unhealthySince: null });
    expect(connections).toBe(1);
  });

  it('another status is unhealthy, since the first unhealthy answer', async () => {
    handle = (_req, res) => {
      res.statusCode = 503;
      res.end('starting');
    };
    const probe = new HealthProbe(url, 1_000, 1_000);
    const first = await probe.check();
    expect(first).toMatchObject({ healthy: false, detail: 'HTTP 503' });
    expect((await probe.check()).unhealthySince).toBe(first.unhealthySince);
  });

  it('no answer within the timeout is unhealthy, and a body that never ends counts as no answer', async () => {
    handle = () => undefined;
    const probe = new HealthProbe(url, 1_000, 200);
    expect(await probe.check()).toMatchObject({ healthy: false, detail: 'no answer within 200 ms' });
    handle = (_req, res) => res.write('partial');
    const healthy = await probe.check();
    // The status came before the body: healthy, and the stalled body is cut at the timeout.
    expect(healthy).toMatchObject({ healthy: true, detail: 'HTTP 200' });
  });

  it('a refused connection is unreachable, with the reason', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const probe = new HealthProbe(`http://127.0.0.1:${port}/health`, 1_000, 1_000);
    expect(await probe.check()).toMatchObject({ healthy: false, detail: expect.stringMatching(/^unreachable: .*ECONNREFUSED/) });
  });

  it('a kept connection the manager closed between probes is no failure', async () => {
    handle = (_req, res) => res.end('ok');
    const probe = new HealthProbe(url, 1_000, 1_000);
    expect((await probe.check()).healthy).toBe(true);
    server.closeIdleConnections();
    expect(await probe.check()).toMatchObject({ healthy: true, detail: 'HTTP 200' });
    expect(connections).toBe(2);
  });

  it('reports each change of health once', async () => {
    const changes: (boolean | null)[] = [];
    const probe = new HealthProbe(url, 1_000, 1_000, (s) => changes.push(s.healthy));
    handle = (_req, res) => res.end('ok');
    await probe.check();
    await probe.check();
    handle = (_req, res) => {
      res.statusCode = 500;
      res.end();
    };
    await probe.check();
    expect(changes).toEqual([true, false]);
  });
});
