import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createLogger } from '../../sidecar/log.js';
import { Metrics } from '../../sidecar/metrics.js';
import { MirrorClient } from '../../sidecar/mirror/client.js';
import { MirrorServer } from '../../sidecar/mirror/server.js';
import { encodeMessage } from '../../sidecar/mirror/protocol.js';
import { MirrorState } from '../../sidecar/mirror/state.js';
import { serverTlsOptions } from '../../sidecar/mirror/tls.js';
import { CLUSTER_TOKEN } from '../harness/cluster.js';
import { treeDigest } from '../harness/files.js';
import { nodeAddress } from '../harness/net.js';
import { waitFor } from '../harness/processes.js';

/**
 * Fencing by term between one mirror server and one client, on loopback without Consul: the parts the
 * 3-node tests cannot stage (a deposed leader still serving, a root that vanished).
 */
describe('file mirror fencing (server and client alone)', () => {
  const base = mkdtempSync(join(tmpdir(), 'ha-mirror-'));
  const host = nodeAddress(9);
  const log = createLogger({ node: 'test', role: 'test', term: 0 }, 'error');
  const metrics = new Metrics('test');
  let serving = true;
  const leaderDir = join(base, 'leader');
  const followerDir = join(base, 'follower');
  const servers: MirrorServer[] = [];
  const clients: MirrorClient[] = [];

  const server = async (term: number) => {
    const s = new MirrorServer({ root: leaderDir, address: host, port: 22000, term, node: 'n1', clusterToken: CLUSTER_TOKEN, clusterName: 'test', rescanMs: 60_000, mayServe: () => serving, log, metrics });
    servers.push(s);
    await s.start();
    return s;
  };
  const client = (state: MirrorState, root = followerDir) => {
    const c = new MirrorClient({ root, host, port: 22000, leader: 'n1', node: 'n2', clusterToken: CLUSTER_TOKEN, clusterName: 'test', rescanMs: 60_000, state, log, metrics });
    clients.push(c);
    c.start();
    return c;
  };

  beforeEach(() => {
    for (const d of [leaderDir, followerDir]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d);
    }
    writeFileSync(join(leaderDir, 'a'), 'from the leader');
    writeFileSync(join(followerDir, 'mine'), 'kept unless a valid leader says otherwise');
    serving = true;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.stop();
    for (const s of servers.splice(0)) await s.stop();
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  test('a server of term 3 refuses a follower that has seen term 5', async () => {
    await server(3);
    const state = new MirrorState(join(base, 'state-refuse.json'));
    state.update({ highestTerm: 5 });
    const c = client(state);
    await waitFor('the refusal', () => c.status().state === 'refused', 10_000, 20);
    expect(c.status().detail).toMatch(/seen term 5.*term is 3/);
    expect(await treeDigest(followerDir)).not.toBe(await treeDigest(leaderDir));
  });

  test('a follower that has seen term 5 refuses a server that welcomes it with term 3 and applies nothing', async () => {
    // A deposed leader that does not know it is one: it answers every hello.
    const sockets: tls.TLSSocket[] = [];
    const fake = tls.createServer(serverTlsOptions(CLUSTER_TOKEN, 'test'), (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.write(encodeMessage({ t: 'welcome', node: 'n1', term: 3, epoch: 'old', seq: 1 }));
      socket.write(encodeMessage({ t: 'snapshot', seq: 1, entries: [], last: true }));
    });
    await new Promise<void>((r) => fake.listen(22000, host, () => r()));
    try {
      const state = new MirrorState(join(base, 'state-fake.json'));
      state.update({ highestTerm: 5 });
      const c = client(state);
      await waitFor('the refusal', () => c.status().state === 'refused', 10_000, 20);
      expect(c.status().detail).toMatch(/leads term 3, but term 5 has been seen/);
      c.stop();
      expect(readdirSync(followerDir)).toEqual(['mine']); // an empty snapshot would have removed it
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => fake.close(r));
    }
  });

  test('the term a follower learns is persisted: a restarted follower still refuses the older leader', async () => {
    const stateFile = join(base, 'state-persist.json');
    const newer = await server(4);
    const first = client(new MirrorState(stateFile));
    await waitFor('in sync with term 4', () => first.status().state === 'in sync', 10_000, 20);
    first.stop();
    await newer.stop();
    await server(2);
    const second = client(new MirrorState(stateFile));
    await waitFor('the refusal', () => second.status().state === 'refused', 10_000, 20);
  });

  test('a server that may no longer serve sends nothing, even to a connected follower', async () => {
    const s = await server(1);
    const c = client(new MirrorState(join(base, 'state-demote.json')));
    await waitFor('in sync', () => c.status().state === 'in sync', 10_000, 20);
    serving = false; // what demote does first
    const seq = s.sequence;
    writeFileSync(join(leaderDir, 'after-demote'), 'must not travel');
    await waitFor('the server to see the change', () => s.sequence > seq, 5000, 20);
    await s.stop();
    expect(await treeDigest(followerDir)).not.toBe(await treeDigest(leaderDir));
  });

  test('a follower whose directory is missing applies nothing and says so', async () => {
    await server(1);
    const missing = join(base, 'not-there');
    const c = client(new MirrorState(join(base, 'state-missing.json')), missing);
    await waitFor('the error', () => c.status().state === 'error', 5000, 20);
    expect(c.status().detail).toMatch(/missing/);
  });
});
