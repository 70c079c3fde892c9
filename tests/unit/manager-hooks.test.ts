import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { managerSchema } from '../../sidecar/manager/config-section.js';
import { HookRunner } from '../../sidecar/manager/hooks.js';
import { processAlive } from '../../sidecar/shared/process.js';
import { waitFor } from '../harness/processes.js';

/** Captures what the runner logs, as the structured objects winston gets. */
function capturingLogger(): { log: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = winston.createLogger({ level: 'debug', transports: [new winston.transports.Console({ silent: true })] });
  log.on('data', (info: Record<string, unknown>) => lines.push(info));
  return { log, lines };
}

const dir = mkdtempSync(join(tmpdir(), 'ha-hooks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const who = { cluster: 'c1', node: 'n1', address: '127.0.0.1', apiUrl: 'http://127.0.0.1:8008' };
const sh = (script: string) => ['/bin/sh', '-c', script, 'hook'];

describe('HookRunner: the manager hooks as child processes', () => {
  test('a hook gets role, term, cluster and node as arguments and environment; its output is logged with them', async () => {
    const { log, lines } = capturingLogger();
    const out = join(dir, 'args');
    const runner = new HookRunner({ leader: sh(`echo "$@|$HA_ROLE $HA_TERM $HA_CLUSTER $HA_NODE $HA_API_URL" > ${out}; echo hello`) }, 5_000, who, log);
    const r = await runner.run('leader', 7);
    expect(r).toMatchObject({ event: 'leader', term: 7, outcome: 'ok', exitCode: 0 });
    expect(readFileSync(out, 'utf8').trim()).toBe('leader 7 c1 n1|leader 7 c1 n1 http://127.0.0.1:8008');
    expect(lines).toContainEqual(expect.objectContaining({ message: 'hook output', hook: 'leader', hookTerm: 7, stream: 'stdout', line: 'hello' }));
  });

  test('a failing hook reports its exit code; a missing command is a spawn error', async () => {
    const { log } = capturingLogger();
    const runner = new HookRunner({ standby: sh('exit 3'), stopping: ['/nonexistent/hook'] }, 5_000, who, log);
    expect(await runner.run('standby', 1)).toMatchObject({ outcome: 'failed', exitCode: 3, detail: 'exit code 3' });
    expect(await runner.run('stopping', 1)).toMatchObject({ outcome: 'spawn_error' });
  });

  test('a hook that hangs is killed at its timeout, with what it started', async () => {
    const { log } = capturingLogger();
    const pidFile = join(dir, 'hang.pid');
    const runner = new HookRunner({ standby: sh(`sleep 600 & echo $! > ${pidFile}; wait`) }, 500, who, log);
    const t0 = Date.now();
    const r = await runner.run('standby', 2);
    expect(r).toMatchObject({ outcome: 'timeout', detail: 'timed out after 0.5 s' });
    expect(Date.now() - t0).toBeLessThan(2_500);
    const sleeper = Number(readFileSync(pidFile, 'utf8'));
    // SIGKILL went to the hook's whole process group when it timed out; on a loaded machine the sleeper's exit
    // may land a moment after the shell's, so wait for it (bounded) rather than look once.
    await waitFor('the hook\'s background sleeper to be killed', () => !processAlive(sleeper), 2_000, 20);
  });

  test('hooks run one at a time, in order; a hook for another role kills the one running; the newest request replaces a waiting one', async () => {
    const { log } = capturingLogger();
    const order = join(dir, 'order');
    const runner = new HookRunner(
      { leader: sh(`echo "start $1 $2" >> ${order}; sleep 600`), standby: sh(`echo "start $1 $2" >> ${order}; sleep 0.2; echo "end $1 $2" >> ${order}`) },
      60_000,
      who,
      log,
    );
    const leader = runner.run('leader', 4);
    while (!existsSync(order)) await new Promise((r) => setTimeout(r, 10)); // the leader hook has started
    expect(runner.current()).toEqual({ event: 'leader', term: 4 });
    const first = runner.run('standby', 4);
    const second = runner.run('standby', 5);
    expect(await leader).toMatchObject({ outcome: 'superseded' });
    expect(await first).toMatchObject({ outcome: 'superseded', detail: 'superseded by the standby hook before it started' });
    expect(await second).toMatchObject({ outcome: 'ok' });
    const third = runner.run('standby', 6);
    const fourth = runner.run('standby', 7);
    expect(await third).toMatchObject({ outcome: 'ok' });
    expect(await fourth).toMatchObject({ outcome: 'ok' });
    expect(readFileSync(order, 'utf8').trim().split('\n')).toEqual([
      'start leader 4',
      'start standby 5',
      'end standby 5',
      'start standby 6',
      'end standby 6',
      'start standby 7',
      'end standby 7',
    ]);
  });
});

describe('manager config', () => {
  test('defaults, and a string command is one executable', () => {
    expect(managerSchema.parse({ hooks: { leader: '/usr/local/bin/become-leader' } })).toMatchObject({
      hooks: { leader: ['/usr/local/bin/become-leader'] },
      hookTimeout: 20,
      leaderHookMaxFailures: 3,
      unhealthyHandOverAfter: 30,
    });
  });
  test('bad values are refused naming the field', () => {
    expect(managerSchema.safeParse({ hooks: { leader: [] } }).success).toBe(false);
    expect(managerSchema.safeParse({ hooks: { onLeader: 'x' } }).success).toBe(false);
    expect(managerSchema.safeParse({ healthUrl: 'ftp://x/health' }).success).toBe(false);
    const r = managerSchema.safeParse({ healthInterval: 1, healthTimeout: 2 });
    expect(r.success ? [] : r.error.issues.map((i) => i.path.join('.'))).toEqual(['healthTimeout']);
  });
});
