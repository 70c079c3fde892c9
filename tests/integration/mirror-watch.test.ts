import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../sidecar/log.js';
import { Metrics } from '../../sidecar/metrics.js';
import { MirrorServer } from '../../sidecar/mirror/server.js';
import { CLUSTER_TOKEN } from '../harness/cluster.js';
import { nodeAddress } from '../harness/net.js';
import { waitFor } from '../harness/processes.js';

/**
 * The leader's watch on its own, without Consul: its rescan is an hour away, so every change below is seen
 * by the watcher or not at all. Each directory has its own watch (watch.ts): one that arrives with
 * directories inside, or replaces another of its name, must have them all watched.
 */
describe("the mirror leader's directory watch", () => {
  const base = mkdtempSync(join(tmpdir(), 'ha-watch-'));
  const root = join(base, 'files');
  const server = new MirrorServer({
    root,
    address: nodeAddress(8),
    port: 22000,
    term: 1,
    node: 'n1',
    clusterToken: CLUSTER_TOKEN,
    clusterName: 'test',
    rescanMs: 3_600_000,
    mayServe: () => true,
    log: createLogger({ node: 'n1', role: 'leader', term: 1 }, 'error'),
    metrics: new Metrics('n1'),
  });
  /** Runs `change` and waits until the manifest holds `entries` and every change is numbered. */
  const expectEntries = async (entries: number, change: () => void) => {
    const before = server.sequence;
    change();
    await waitFor(`${entries} entries in the manifest (has ${server.entries})`, () => server.entries === entries && server.sequence > before, 5_000);
  };

  beforeAll(async () => {
    mkdirSync(root, { recursive: true });
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
    rmSync(base, { recursive: true, force: true });
  });

  test('a file written in a directory made with mkdir -p is seen', async () => {
    await expectEntries(3, () => mkdirSync(join(root, 'a/b/c'), { recursive: true }));
    await expectEntries(4, () => writeFileSync(join(root, 'a/b/c/f1'), 'one'));
  });

  test('a file written in a tree moved in, and in that tree renamed, is seen', async () => {
    const staged = join(base, 'staged');
    mkdirSync(join(staged, 'x/y'), { recursive: true });
    await expectEntries(7, () => renameSync(staged, join(root, 'moved')));
    await expectEntries(8, () => writeFileSync(join(root, 'moved/x/y/f2'), 'two'));
    await expectEntries(8, () => renameSync(join(root, 'moved'), join(root, 'renamed')));
    await expectEntries(9, () => writeFileSync(join(root, 'renamed/x/y/f3'), 'three'));
  });

  test('a file written in a directory that replaced another of the same name is seen', async () => {
    const staged = join(base, 'staged');
    mkdirSync(join(staged, 'p/q'), { recursive: true });
    await expectEntries(7, () => {
      rmSync(join(root, 'renamed'), { recursive: true });
      renameSync(staged, join(root, 'renamed'));
    });
    await expectEntries(8, () => writeFileSync(join(root, 'renamed/p/q/f4'), 'four'));
  });
});
