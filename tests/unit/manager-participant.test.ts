import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import winston from 'winston';
import type { TurnContext } from '../../sidecar/election/participant.js';
import { managerSchema } from '../../sidecar/manager/config-section.js';
import { ManagerParticipant } from '../../sidecar/manager/participant.js';

/**
 * The manager part's own logic against real `sh` hooks and a real HTTP health endpoint, without a cluster:
 * when /leader may answer 200, when it asks to hand over, and which step-downs wait for the standby hook.
 */

const log = winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });
const identity = { cluster: 'ha-sidecar', node: 'n1', address: '127.0.0.1', apiUrl: 'http://127.0.0.1:8008' };
const sh = (script: string) => ['/bin/sh', '-c', script, 'hook'];
const checks: string[] = [];
const ctx = (term: number): TurnContext => ({
  term,
  leader: null,
  members: [],
  switchoverTarget: false,
  clusterEverLed: async () => true,
  synchronousMode: false,
  synchronousModeStrict: false,
  signal: new AbortController().signal,
  log,
  report: () => undefined,
  reportCheck: async (_id, _name, status, output) => void checks.push(`${status} ${output}`),
  turnAgainSoon: () => undefined,
});
const until = async (what: string, check: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const parts: ManagerParticipant[] = [];
const make = (manager: Record<string, unknown>) => {
  const p = new ManagerParticipant(managerSchema.parse(manager), identity, log);
  parts.push(p);
  return p;
};
afterAll(async () => {
  for (const p of parts) await p.close();
});

describe('ManagerParticipant: the leader hook gates /leader and can ask to hand over', () => {
  test('ready for leader only once the leader hook exited 0', async () => {
    const p = make({ hooks: { leader: sh('sleep 0.3') } });
    expect(p.ready('leader')).toBe(false);
    await p.promote(ctx(4));
    expect(p.ready('leader')).toBe(false);
    expect(p.leaderProblem()).toEqual({ problem: 'the leader hook is running', handOver: false });
    await until('the hook to succeed', () => p.ready('leader'));
    expect(p.leaderProblem()).toBeNull();
    expect(p.memberFields().manager.state).toBe('active');
    expect(p.ready('standby')).toBe(true); // the manager never gates /health or /replica
  });

  test('a failing leader hook is retried after the delay, then asks to hand over', async () => {
    const p = make({ hooks: { leader: sh('echo broken >&2; exit 1') }, leaderHookRetryDelay: 0.2, leaderHookMaxFailures: 2 });
    await p.promote(ctx(5));
    await until('the first failure', () => p.leaderProblem()?.problem.startsWith('the leader hook failed 1 of 2') === true);
    expect(p.leaderProblem()?.handOver).toBe(false);
    await p.leaderTurn(ctx(5)); // too early: no retry yet
    expect(p.memberFields().manager.state).toBe('leader hook failed (1/2)');
    expect(checks.at(-1)).toBe('critical leader hook failed (1/2): exit code 1');
    await new Promise((r) => setTimeout(r, 250));
    await p.leaderTurn(ctx(5));
    await until('the second failure', () => p.leaderProblem()?.handOver === true);
    expect(p.leaderProblem()?.problem).toBe('the leader hook failed 2 times (last: exit code 1)');
    expect(p.ready('leader')).toBe(false);
  });

  test('a lost lease starts the standby hook without waiting for it; a switchover waits', async () => {
    const p = make({ hooks: { leader: sh('true'), standby: sh('sleep 0.5') } });
    await p.promote(ctx(6));
    let t0 = Date.now();
    await p.demote('lease_lost');
    expect(Date.now() - t0).toBeLessThan(200);
    expect(p.ready('leader')).toBe(false);
    expect(p.leaderProblem()).toBeNull();
    await until('the standby hook to end', () => p.memberFields().manager.state === 'passive');
    await p.promote(ctx(7));
    t0 = Date.now();
    await p.demote('switchover');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
  });
});

describe('ManagerParticipant: the health URL', () => {
  let status = 200;
  let server: Server;
  let url = '';
  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(status).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('an unhealthy manager turns /leader off at once and asks to hand over after unhealthyHandOverAfter', async () => {
    status = 200;
    const p = make({ healthUrl: url, healthInterval: 0.1, healthTimeout: 0.1, unhealthyHandOverAfter: 0.5 });
    await p.promote(ctx(8));
    await until('healthy', () => p.ready('leader'));
    expect(p.memberFields().manager).toEqual({ state: 'healthy', detail: 'HTTP 200' });
    status = 500;
    await until('unhealthy', () => !p.ready('leader'));
    expect(p.leaderProblem()).toEqual({ problem: 'the manager is unhealthy (HTTP 500); hands over after 0.5 s', handOver: false });
    await until('the hand-over request', () => p.leaderProblem()?.handOver === true);
    expect(p.leaderProblem()?.problem).toMatch(/^the manager has been unhealthy for 0 s \(HTTP 500\)$/);
    status = 200;
    await until('healthy again', () => p.ready('leader'));
    expect(p.leaderProblem()).toBeNull();
  });
});
