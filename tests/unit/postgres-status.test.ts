import { peerPositionOf, primaryStatus, standbyStatus, stoppedStatus } from '../../sidecar/postgres/status.js';

const upstream = { host: '127.0.5.11', port: 15432 };

describe('postgres status: what the loop reads of a server', () => {
  test('a stopped server keeps the role it was last given and its upstream', () => {
    const s = stoppedStatus(false, 'standby', upstream);
    expect(s).toMatchObject({ running: false, role: 'stopped', intent: 'standby', upstream, streaming: false, replicas: [], timeline: null });
  });

  test('a primary: timeline from its WAL file name, flushed position, standbys with their positions', () => {
    const s = primaryStatus(stoppedStatus(true, 'primary', null), 'ANY 1 ("n2")', { lsn: '0/5000100', walfile: '000000030000000000000005' }, [
      { name: 'n2', client: '127.0.5.12', state: 'streaming', sync_state: 'quorum', flush: '0/5000100', replay: '0/5000000' },
      { name: 'n3', client: null, state: 'startup', sync_state: 'async', flush: null, replay: null },
    ]);
    expect(s.role).toBe('primary');
    expect(s.inRecovery).toBe(false);
    expect(s.timeline).toBe(3);
    expect(s.currentLsn?.bytes).toBe(0x5000100);
    expect(s.synchronousStandbyNames).toBe('ANY 1 ("n2")');
    expect(s.replicas).toEqual([
      { name: 'n2', clientAddress: '127.0.5.12', state: 'streaming', syncState: 'quorum', flushLsn: { text: '0/5000100', bytes: 0x5000100 }, replayLsn: { text: '0/5000000', bytes: 0x5000000 } },
      { name: 'n3', clientAddress: null, state: 'startup', syncState: 'async', flushLsn: null, replayLsn: null },
    ]);
  });

  test('a streaming standby: the timeline it receives, its sender, received and replayed positions', () => {
    const s = standbyStatus(stoppedStatus(true, 'standby', upstream), '', {
      received: '0/6000000',
      replayed: '0/5FFFF00',
      checkpoint_tli: 2,
      status: 'streaming',
      received_tli: 3,
      sender_host: '127.0.5.11',
      sender_port: 15432,
    });
    expect(s).toMatchObject({ role: 'standby', inRecovery: true, streaming: true, timeline: 3, upstream });
    expect(s.receivedLsn?.bytes).toBe(0x6000000);
    expect(s.replayedLsn?.bytes).toBe(0x5ffff00);
    expect(s.walReceiver).toEqual({ status: 'streaming', host: '127.0.5.11', port: 15432 });
  });

  test('a standby without a WAL receiver: the timeline of its last restartpoint, not streaming', () => {
    const s = standbyStatus(stoppedStatus(true, 'standby', upstream), '', {
      received: null,
      replayed: '0/5000000',
      checkpoint_tli: 2,
      status: null,
      received_tli: null,
      sender_host: null,
      sender_port: null,
    });
    expect(s).toMatchObject({ streaming: false, timeline: 2, walReceiver: null, receivedLsn: null });
  });

  test("a peer's position: the most WAL it has, and what it replayed", () => {
    expect(peerPositionOf({ received: '0/6000000', replayed: '0/5000000', flushed: null })).toEqual({ wal: 0x6000000, replayed: 0x5000000 });
    // Never streamed since start: what it replayed is all it has.
    expect(peerPositionOf({ received: null, replayed: '0/5000000', flushed: null })).toEqual({ wal: 0x5000000, replayed: 0x5000000 });
    // A primary answers its flushed position for both.
    expect(peerPositionOf({ received: null, replayed: null, flushed: '0/7000000' })).toEqual({ wal: 0x7000000, replayed: 0x7000000 });
    expect(peerPositionOf({ received: null, replayed: null, flushed: null })).toBeNull();
  });
});
