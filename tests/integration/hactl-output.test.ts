import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../../sidecar/shared/package.js';

/**
 * hactl's output on one pipe for stdout and stderr (`hactl cluster status 2>&1 | less`): the failure line
 * comes after the whole table, even when the reader is slow and Node still queues part of stdout. The child
 * is the built hactl's own `processIo`; it writes a table larger than the pipe and the parent's read buffer,
 * then the failure line, and tells the parent over IPC; only then does the parent start reading.
 */

const OUTPUT_JS = pathToFileURL(join(projectRoot(), 'dist', 'cli', 'output.js')).href;
const ROWS = 20_000;
const FAILURE = 'hactl: cluster_degraded: n3 is offline';

const child = `
import { processIo } from ${JSON.stringify(OUTPUT_JS)};
for (let i = 0; i < ${ROWS}; i++) processIo.out('   n' + i + '    127.0.0.13  standby  following leader n1  0 B  1  in sync gen 0  healthy');
processIo.err(${JSON.stringify(FAILURE)});
process.send({ queued: process.stdout.writableLength });
process.disconnect();
`;

test('a failure line written while stdout is still queued lands after the last row, on a line of its own', async () => {
  // sh gives node's stdout and stderr one pipe (2>&1); the IPC channel (fd 3) passes through exec.
  const proc = spawn('/bin/sh', ['-c', `exec "${process.execPath}" --input-type=module -e "$CHILD" 2>&1`], {
    env: { ...process.env, CHILD: child },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  try {
    const queued = await new Promise<number>((resolve, reject) => {
      proc.once('message', (m) => resolve((m as { queued: number }).queued));
      proc.once('exit', (code) => reject(new Error(`child exited (${code}) before writing`)));
    });
    // The condition under test: the pipe was full, so part of stdout still waited in Node's queue.
    expect(queued).toBeGreaterThan(0);
    const stdout = proc.stdout;
    if (stdout === null) throw new Error('no stdout pipe');
    let text = '';
    stdout.setEncoding('utf8');
    for await (const chunk of stdout) text += chunk as string;
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(ROWS + 1);
    expect(lines.filter((l) => l.includes('hactl:'))).toEqual([FAILURE]);
    expect(lines[ROWS]).toBe(FAILURE);
  } finally {
    proc.kill('SIGKILL');
  }
});
