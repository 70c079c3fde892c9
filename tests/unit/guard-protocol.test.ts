import { performance } from 'node:perf_hooks';
import { SidecarError } from '../../sidecar/errors.js';
import {
  formatCommand,
  formatReply,
  GuardState,
  monotonicNs,
  parseCommand,
  parseReply,
  performanceToMonotonicNs,
  type GuardCommand,
} from '../../sidecar/guard/protocol.js';

describe('write guard protocol: lines', () => {
  const commands: GuardCommand[] = [
    { seq: 1, kind: 'arm', deadlineNs: 123456789012345678n },
    { seq: 2, kind: 'feed', deadlineNs: 0n },
    { seq: 3, kind: 'disarm' },
    { seq: 4, kind: 'session', session: '3f2c9a1e-0b7d-4c55-9e21-6a8d0f4b2c17' },
    { seq: 5, kind: 'session', session: null },
  ];

  test.each(commands)('a command survives format and parse: %o', (command) => {
    expect(formatCommand(command)).toMatch(/\n$/);
    expect(parseCommand(formatCommand(command))).toEqual(command);
  });

  test.each(['', 'arm 5', '1 arm', '1 arm -5', '1 feed 1.5', '1 disarm 5', 'x disarm', '1 kill 5', '1 arm 5 6', '1 session', '1 session x', '1 session ../../v1/kv/leader'])(
    'a bad command %j is refused with bad_guard_command',
    (line) => {
      let error: unknown;
      try {
        parseCommand(line);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SidecarError);
      expect((error as SidecarError).code).toBe('bad_guard_command');
    },
  );

  test('replies survive format and parse; anything else is null', () => {
    expect(parseReply(formatReply({ seq: 7, armed: true }))).toEqual({ seq: 7, armed: true });
    expect(parseReply(formatReply({ seq: 8, armed: false }))).toEqual({ seq: 8, armed: false });
    for (const line of ['', '7', '7 ok', 'armed', '7 armed now']) expect(parseReply(line)).toBeNull();
  });
});

describe('write guard protocol: state', () => {
  const arm = (seq: number, deadlineNs: bigint): GuardCommand => ({ seq, kind: 'arm', deadlineNs });
  const feed = (seq: number, deadlineNs: bigint): GuardCommand => ({ seq, kind: 'feed', deadlineNs });

  test('a fresh guard is disarmed and never kills', () => {
    const s = new GuardState();
    expect(s.mustKill(10n ** 18n)).toBe(false);
  });

  test('fed but not armed: never kills, yet remembers the deadline', () => {
    const s = new GuardState();
    expect(s.apply(feed(1, 100n))).toEqual({ seq: 1, armed: false });
    expect(s.mustKill(1000n)).toBe(false);
    expect(s.deadlineNs).toBe(100n);
  });

  test('armed: kills from the deadline on, not before', () => {
    const s = new GuardState();
    expect(s.apply(arm(1, 100n))).toEqual({ seq: 1, armed: true });
    expect(s.mustKill(99n)).toBe(false);
    expect(s.mustKill(100n)).toBe(true);
    expect(s.mustKill(101n)).toBe(true);
  });

  test('a feed moves the deadline, to the last one sent even when earlier', () => {
    const s = new GuardState();
    s.apply(arm(1, 100n));
    s.apply(feed(2, 200n));
    expect(s.mustKill(150n)).toBe(false);
    expect(s.mustKill(200n)).toBe(true);
    s.apply(feed(3, 120n));
    expect(s.mustKill(150n)).toBe(true);
  });

  test('a feed keeps it armed; a disarm stops it; an arm restarts it', () => {
    const s = new GuardState();
    s.apply(arm(1, 100n));
    expect(s.apply(feed(2, 100n)).armed).toBe(true);
    expect(s.apply({ seq: 3, kind: 'disarm' })).toEqual({ seq: 3, armed: false });
    expect(s.mustKill(500n)).toBe(false);
    s.apply(arm(4, 400n));
    expect(s.mustKill(500n)).toBe(true);
  });

  test('a session command only changes the session it would release, never arms or disarms', () => {
    const s = new GuardState();
    s.apply(arm(1, 100n));
    expect(s.apply({ seq: 2, kind: 'session', session: '3f2c9a1e-0b7d-4c55-9e21-6a8d0f4b2c17' })).toEqual({ seq: 2, armed: true });
    expect(s.session).toBe('3f2c9a1e-0b7d-4c55-9e21-6a8d0f4b2c17');
    expect(s.apply({ seq: 3, kind: 'session', session: null })).toEqual({ seq: 3, armed: true });
    expect(s.session).toBeNull();
    expect(s.deadlineNs).toBe(100n);
  });

  test("the lease's session is the one told before the arm; a later session is not, and a disarm forgets it", () => {
    const s = new GuardState();
    const first = '3f2c9a1e-0b7d-4c55-9e21-6a8d0f4b2c17';
    const later = '9b1d7e44-2a6f-4c3e-8d10-5f7a2c9e0b31';
    s.apply({ seq: 1, kind: 'session', session: first });
    s.apply(arm(2, 100n));
    expect(s.leaseSession).toBe(first);
    // A starved guard whose sidecar dropped that session and made a new one releases only the first.
    s.apply({ seq: 3, kind: 'session', session: later });
    expect(s.session).toBe(later);
    expect(s.leaseSession).toBe(first);
    s.apply({ seq: 4, kind: 'disarm' });
    expect(s.leaseSession).toBeNull();
    s.apply(arm(5, 200n));
    expect(s.leaseSession).toBe(later);
  });

  test('its one timer: none while disarmed, at the deadline (rounded up, never early) while fed, the starved poll once past it', () => {
    const s = new GuardState();
    expect(s.nextCheckMs(0n, 50)).toBeNull();
    s.apply(arm(1, 3_000_000_000n));
    expect(s.nextCheckMs(0n, 50)).toBe(3000);
    expect(s.nextCheckMs(2_999_999_001n, 50)).toBe(1);
    expect(s.nextCheckMs(2_000_000_001n, 50)).toBe(1000);
    expect(s.nextCheckMs(3_000_000_000n, 50)).toBe(50);
    s.apply(feed(2, 6_000_000_000n));
    expect(s.nextCheckMs(3_000_000_000n, 50)).toBe(3000);
    s.apply(feed(3, 10n ** 19n));
    expect(s.nextCheckMs(0n, 50)).toBe(2_147_483_647);
    s.apply({ seq: 4, kind: 'disarm' });
    expect(s.nextCheckMs(3_000_000_000n, 50)).toBeNull();
  });

  test('an arm without any confirmation (deadline 0) kills at once: fail closed', () => {
    const s = new GuardState();
    s.apply(arm(1, 0n));
    expect(s.mustKill(monotonicNs())).toBe(true);
  });
});

describe('write guard protocol: clocks', () => {
  test('a performance.now() time converts to the same instant on CLOCK_MONOTONIC', () => {
    const before = monotonicNs();
    const converted = performanceToMonotonicNs(performance.now() + 1000);
    const after = monotonicNs();
    // One second ahead of a moment between `before` and `after`, give or take the rounding.
    expect(converted).toBeGreaterThanOrEqual(before + 1_000_000_000n - 1_000n);
    expect(converted).toBeLessThanOrEqual(after + 1_000_000_000n + 1_000n);
  });
});
