import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeZombiePidFile } from '../../sidecar/postgres/pid-file.js';
import { processState } from '../../sidecar/shared/process.js';

/**
 * A postmaster.pid whose postmaster is a zombie (dead, not yet reaped by init) is removed so that Postgres
 * and pg_rewind can start; one naming a live process, or with a server process still in the directory, stays.
 */

const started: ChildProcess[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ha-pid-file-'));
});
afterEach(() => {
  for (const child of started.splice(0)) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const writePidFile = (pid: number) => writeFileSync(join(dir, 'postmaster.pid'), `${pid}\n${dir}\n1700000000\n15432\n/tmp\n127.0.0.1\n  1234  5678\nready\n`);

/** A zombie: `sleep 0.05`'s parent execs into a long sleep that never reaps it. */
async function zombie(): Promise<number> {
  const parent = spawn('/bin/sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  started.push(parent);
  const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const deadline = Date.now() + 5_000;
  while (processState(pid) !== 'Z') {
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not become a zombie`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return pid;
}

test('the pid of a zombie: the file goes, and its pid is returned', async () => {
  const pid = await zombie();
  writePidFile(pid);
  expect(removeZombiePidFile(dir)).toBe(pid);
  expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
});

test('the pid of a live process: the file stays', () => {
  writePidFile(process.pid);
  expect(removeZombiePidFile(dir)).toBeNull();
  expect(existsSync(join(dir, 'postmaster.pid'))).toBe(true);
});

test('a zombie postmaster while a server process still runs in the directory (an orphaned backend): the file stays', async () => {
  const pid = await zombie();
  writePidFile(pid);
  // A process of a binary named postgres whose working directory is the data directory, as a backend's is.
  const binary = join(dir, 'postgres');
  copyFileSync('/bin/sleep', binary);
  const backend = spawn(binary, ['30'], { cwd: dir, stdio: 'ignore' });
  started.push(backend);
  await new Promise((r) => backend.once('spawn', r));
  expect(removeZombiePidFile(dir)).toBeNull();
  expect(existsSync(join(dir, 'postmaster.pid'))).toBe(true);
});

test('no file, or one without a pid: nothing to do', () => {
  expect(removeZombiePidFile(dir)).toBeNull();
  writeFileSync(join(dir, 'postmaster.pid'), 'garbage\n');
  expect(removeZombiePidFile(dir)).toBeNull();
});
