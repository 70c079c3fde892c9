import { describe, expect, it } from '@jest/globals';
import { SidecarError } from '../../sidecar/errors.js';
import { sleep, waitUntil } from '../../cli/local/wait.js';

/** The one poll loop of `hactl local` and the test harness (cli/local/wait.ts). */
describe('waitUntil', () => {
  it('returns the first value that is neither undefined nor false, asking again until then', async () => {
    let calls = 0;
    const value = await waitUntil('the third call', () => (++calls === 3 ? 'ready' : calls === 1 ? undefined : false), { timeoutMs: 5_000, intervalMs: 1 });
    expect(value).toBe('ready');
    expect(calls).toBe(3);
  });

  it('times out with start_timeout, naming what it waited for, the last error and where to look', async () => {
    const error = await waitUntil('the moon', () => Promise.reject(new Error('no moon yet')), { timeoutMs: 30, intervalMs: 5, hint: 'moon.log' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({ code: 'start_timeout' });
    expect((error as Error).message).toBe('timed out after 0.03 s waiting for the moon (last error: no moon yet); see moon.log');
  });

  it('stops at once with the guard\'s error when waiting has become pointless', async () => {
    let calls = 0;
    const guard = () => {
      throw new SidecarError('process_exited', 'consul on n1 exited', 500);
    };
    await expect(waitUntil('consul', () => (calls++, false), { timeoutMs: 60_000, guard })).rejects.toMatchObject({ code: 'process_exited' });
    expect(calls).toBe(0);
  });

  it('stops with interrupted when its signal aborts, without waiting out the interval', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = waitUntil('never', () => false, { timeoutMs: 60_000, intervalMs: 30_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(waiting).rejects.toMatchObject({ code: 'interrupted' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('sleep', () => {
  it('resolves at once when its signal has already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const started = Date.now();
    await sleep(60_000, controller.signal);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
