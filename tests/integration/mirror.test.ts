import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { FrameDecoder, PROTOCOL_VERSION, encodeMessage } from '../../sidecar/mirror/protocol.js';
import { TestCluster } from '../harness/cluster.js';
import { treeDigest } from '../harness/files.js';
import { connectMirror, filesOf, readUntilClosed, waitIdentical, writeRandomFile } from '../harness/mirror.js';
import { waitFor } from '../harness/processes.js';

const ALL = [0, 1, 2];
/** Kill -9 runs of the synchronous-files test: 3 in `npm test` (about 15 s each); HA_MIRROR_SYNC_RUNS=20 for the figure. */
const SYNC_RUNS = Number(process.env.HA_MIRROR_SYNC_RUNS ?? 3);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface HealthEntry {
  Service: { ID: string };
  Checks: { Name: string; Status: string; Output: string }[];
}

describe('file mirror with real sidecars (3 nodes, Postgres off)', () => {
  const cluster = new TestCluster({ size: 3, files: true });
  const dir = (i: number, path = '') => join(cluster.filesDir(i), path);
  const logOf = (i: number) => readFileSync(join(cluster.baseDir, cluster.names[i], 'sidecar.log'), 'utf8');
  let leader = 0;

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllRunning();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
  }, 60_000);

  test('create, modify, delete, rename, nested and empty entries, modes and a 300 MiB file: every follower byte-identical', async () => {
    const d = (p: string) => dir(leader, p);
    mkdirSync(d('blueprints/app/v1'), { recursive: true });
    mkdirSync(d('empty-dir/inner'), { recursive: true });
    writeFileSync(d('blueprints/app/v1/blueprint.yaml'), 'tosca_definitions_version: 1\n');
    writeFileSync(d('empty-file'), '');
    writeFileSync(d('plugins.txt'), 'one\n');
    writeFileSync(d('to-delete'), 'bye');
    writeFileSync(d('certs.key'), 'secret');
    chmodSync(d('certs.key'), 0o600);
    writeFileSync(d('run.sh'), '#!/bin/sh\n');
    chmodSync(d('run.sh'), 0o755);
    chmodSync(d('empty-dir/inner'), 0o700);
    await waitIdentical(cluster, leader, ALL);

    writeFileSync(d('plugins.txt'), 'one\ntwo\n');
    rmSync(d('to-delete'));
    renameSync(d('blueprints/app/v1'), d('blueprints/app/v2'));
    chmodSync(d('run.sh'), 0o750);
    await writeRandomFile(d('big.bin'), 300 * 1024 * 1024);
    const digest = await waitIdentical(cluster, leader, ALL, 50_000);
    expect(digest).toBe(await treeDigest(dir(1)));
    expect(readFileSync(dir(2, 'blueprints/app/v2/blueprint.yaml'), 'utf8')).toBe('tosca_definitions_version: 1\n');

    // Status: the FILES field of every member, and a passing `files` check per node in Consul.
    const files = await filesOf(cluster);
    expect(files.n1?.state).toBe('serving');
    expect([files.n2?.state, files.n3?.state]).toEqual(['in sync', 'in sync']);
    await waitFor('a passing files check on every node', async () => {
      const res = await cluster.consulCall(0, 'GET', '/v1/health/service/ha-sidecar');
      const entries = (await res.json()) as HealthEntry[];
      const checks = entries.map((e) => e.Checks.find((c) => c.Name === 'files'));
      return checks.length === 3 && checks.every((c) => c?.Status === 'passing');
    }, 10_000);
    rmSync(d('big.bin'));
    await waitIdentical(cluster, leader, ALL);
  }, 110_000);

  test('a follower down during 1,000 changes catches up when it starts again', async () => {
    await cluster.stopSidecar(2);
    const d = (p: string) => dir(leader, p);
    mkdirSync(d('many'), { recursive: true });
    for (let k = 0; k < 600; k++) writeFileSync(d(`many/f${k}`), `file ${k}\n`);
    for (let k = 0; k < 250; k++) writeFileSync(d(`many/f${k}`), `file ${k}, changed\n`);
    for (let k = 450; k < 600; k++) rmSync(d(`many/f${k}`));
    await waitIdentical(cluster, leader, [0, 1]);
    const logStart = logOf(leader).length;
    await cluster.startSidecar(2);
    await waitIdentical(cluster, leader, ALL);
    // It got the changes since its position from the leader's change log, not the manifest.
    const greetings = logOf(leader).slice(logStart).split('\n').filter((l) => l.includes('"peer":"n3@')).map((l) => JSON.parse(l) as { message: string; changes?: number; bytes: number });
    const catchUp = greetings.find((g) => g.message.startsWith('files: sent a follower'));
    expect(catchUp).toMatchObject({ message: 'files: sent a follower the changes since its position' });
    console.log(`catch-up after 1,000 changes: ${catchUp?.changes} change messages, ${catchUp?.bytes} bytes`);
  }, 90_000);

  test('a standby edited while its sidecar was down gets the whole manifest instead of the changes, and is put right', async () => {
    const follower = ALL.find((i) => i !== leader) as number;
    await cluster.stopSidecar(follower);
    writeFileSync(dir(follower, 'many/f1'), 'edited while the sidecar was down\n');
    writeFileSync(dir(leader, 'many/f2'), 'changed on the leader meanwhile\n');
    await cluster.startSidecar(follower);
    await waitIdentical(cluster, leader, ALL);
    expect(readFileSync(dir(follower, 'many/f1'), 'utf8')).toBe('file 1, changed\n');
    expect(logOf(follower)).toMatch(/files_catch_up_mismatch/);
  }, 60_000);

  test('garbage, a truncated frame and an oversized frame on 22000 close that connection and harm nothing', async () => {
    const host = cluster.address(leader);
    // Not TLS at all: the handshake fails.
    const raw = net.connect({ host, port: 22000 });
    await new Promise((r) => raw.once('connect', r));
    raw.end(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage'));
    await new Promise((r) => raw.once('close', r));
    // The right key, then a frame cut short.
    const truncated = await connectMirror(host);
    const closed = readUntilClosed(truncated);
    truncated.end(encodeMessage({ t: 'get', path: 'x' }).subarray(0, 7));
    await closed;
    // The right key, then a frame claiming 1 GiB.
    const oversized = await connectMirror(host);
    const closed2 = readUntilClosed(oversized);
    oversized.write(Buffer.from([0x40, 0, 0, 0, 1]));
    await closed2;
    await waitFor('the reasons in the leader log', () => /frame_truncated/.test(logOf(leader)) && /frame_oversized/.test(logOf(leader)) && /files_peer_refused/.test(logOf(leader)), 5000);

    writeFileSync(dir(leader, 'after-garbage'), 'still serving');
    await waitIdentical(cluster, leader, ALL);
  });

  test('a peer with the wrong cluster key is refused; a follower claiming a newer term is refused', async () => {
    const host = cluster.address(leader);
    await expect(connectMirror(host, 'another-cluster-token-xyz')).rejects.toThrow();
    await waitFor('the refusal in the leader log', () => logOf(leader).split('\n').filter((l) => l.includes('files_peer_refused')).length >= 2, 5000);

    const term = (await cluster.call(leader, 'GET', '/cluster')).body.term as number;
    const socket = await connectMirror(host);
    const answer = readUntilClosed(socket);
    socket.write(encodeMessage({ t: 'hello', v: PROTOCOL_VERSION, node: 'intruder', term: term + 5, lastSeq: 0, epoch: '' }));
    const frames = new FrameDecoder().push(await answer);
    expect(frames.map((f) => (f.kind === 1 ? (f.message as { t: string; code?: string }) : null))).toEqual([expect.objectContaining({ t: 'refuse', code: 'stale_term' })]);
  });

  test('after a failover a file written on the new leader reaches everyone, and the old leader\'s later changes are overwritten', async () => {
    const old = leader;
    await cluster.stopSidecar(old); // the lock is released: a standby takes over at once
    leader = await waitFor('a new leader', () => cluster.leaderIndex([1, 2]), 30_000, 50);
    // Written on the deposed leader after it lost the lock: must not survive.
    writeFileSync(dir(old, 'stale-after-demote'), 'old leader');
    writeFileSync(dir(old, 'plugins.txt'), 'edited on the old leader\n');
    writeFileSync(dir(leader, 'from-new-leader'), 'new leader');
    await cluster.startSidecar(old);
    await waitIdentical(cluster, leader, ALL);
    expect(readFileSync(dir(old, 'from-new-leader'), 'utf8')).toBe('new leader');
    expect(readFileSync(dir(old, 'plugins.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(() => readFileSync(dir(old, 'stale-after-demote'))).toThrow(/ENOENT/);
    const files = await filesOf(cluster);
    expect(files[cluster.names[leader]]?.state).toBe('serving');
  }, 90_000);

  test('a standby\'s local edit is overwritten by the leader\'s state and logged', async () => {
    const follower = ALL.find((i) => i !== leader) as number;
    writeFileSync(dir(follower, 'plugins.txt'), 'local edit\n');
    writeFileSync(dir(follower, 'local-only'), 'x');
    await waitFor('the edit to be overwritten', () => readFileSync(dir(follower, 'plugins.txt'), 'utf8') === 'one\ntwo\n', 15_000, 200);
    await waitIdentical(cluster, leader, ALL);
    expect(logOf(follower)).toMatch(/files_local_edit/);
  }, 30_000);

  test(`synchronous files: an upload acknowledged by POST /files/sync is on the new leader after kill -9 of the old leader (${SYNC_RUNS} runs)`, async () => {
    expect((await cluster.call(leader, 'PATCH', '/config', { synchronousMode: true })).status).toBe(200);
    const pid = (i: number) => cluster.processes.get(`sidecar-${cluster.names[i]}`)?.child.pid as number;
    const lost: string[] = [];
    for (let run = 1; run <= SYNC_RUNS; run++) {
      await cluster.waitAllRunning();
      await waitIdentical(cluster, leader, ALL);
      // The leader reads the mode (and who may acknowledge) in its turns: wait until it waits for standbys.
      await waitFor('the leader to wait for a standby', async () => (await cluster.call(leader, 'POST', '/files/sync', { paths: ['plugins.txt'] })).body.synchronous === true, 10_000, 200);
      const standbys = ALL.filter((i) => i !== leader);
      // One standby is frozen while the upload is acknowledged, so only the other can have it: when the
      // frozen one wakes up, the leader is gone, and it must not take over without the upload.
      const frozen = standbys[run % 2];
      const name = `upload-${run}`;
      const data = randomBytes(64 * 1024);
      writeFileSync(dir(leader, `.upload-${run}`), data);
      renameSync(dir(leader, `.upload-${run}`), dir(leader, name));
      process.kill(pid(frozen), 'SIGSTOP');
      let answer: { status: number; body: Record<string, unknown> };
      try {
        answer = await cluster.call(leader, 'POST', '/files/sync', { paths: [name] });
        await cluster.killSidecar(leader);
      } finally {
        process.kill(pid(frozen), 'SIGCONT');
      }
      expect(answer).toMatchObject({ status: 200, body: { synchronous: true, standby: cluster.names[standbys.find((i) => i !== frozen) as number] } });
      const old = leader;
      leader = await waitFor('a new leader', () => cluster.leaderIndex(standbys), 30_000, 50);
      let onNewLeader = '';
      try {
        onNewLeader = sha256(readFileSync(dir(leader, name)));
      } catch {
        /* missing: lost */
      }
      if (onNewLeader !== sha256(data)) lost.push(`run ${run}: ${name} not on the new leader ${cluster.names[leader]}`);
      await cluster.startSidecar(old);
    }
    await cluster.waitAllRunning();
    await waitIdentical(cluster, leader, ALL);
    expect(lost).toEqual([]);
    expect((await cluster.call(leader, 'PATCH', '/config', { synchronousMode: false })).status).toBe(200);
  }, 60_000 + SYNC_RUNS * 40_000);

  test('POST /files/sync refuses a path outside the directory and answers 409 on a standby', async () => {
    expect(await cluster.call(leader, 'POST', '/files/sync', { paths: ['../etc/passwd'] })).toMatchObject({ status: 400, body: { error: 'bad_request' } });
    expect(await cluster.call(leader, 'POST', '/files/sync', { paths: [] })).toMatchObject({ status: 400, body: { error: 'bad_request' } });
    const standby = ALL.find((i) => i !== leader) as number;
    expect((await cluster.call(standby, 'POST', '/files/sync', { paths: ['plugins.txt'] })).status).toBe(409);
  });
});
