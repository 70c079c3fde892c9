import type { EventEmitter } from 'node:events';
import winston from 'winston';
import { GossipRejoin, type GossipStore } from '../../sidecar/consul/gossip-rejoin.js';
import { waitFor } from '../harness/processes.js';

const log = winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });

/**
 * A fake store: each watch read is recorded with its index and answered by `answer` (a promise the test
 * settles), so the test sees when the rejoin reads, blocks, and joins.
 */
class FakeStore implements GossipStore {
  reads: { index: number; cancel: EventEmitter; resolve: (r: { nodes: string[]; index: number }) => void; reject: (e: Error) => void }[] = [];
  failed: { name: string; address: string }[] = [];
  joins: string[] = [];
  listings = 0;

  watchFailedNodes = (index: number, _waitSeconds: number, cancel: EventEmitter) =>
    new Promise<{ nodes: string[]; index: number }>((resolve, reject) => {
      this.reads.push({ index, cancel, resolve, reject });
      cancel.once('cancel', () => reject(new Error('aborted')));
    });

  failedGossipMembers = () => {
    this.listings++;
    return Promise.resolve(this.failed);
  };

  joinGossip = (address: string) => {
    this.joins.push(address);
    return Promise.resolve();
  };
}

describe('GossipRejoin: joins failed members only when Consul reports one', () => {
  let rejoin: GossipRejoin | null = null;
  afterEach(() => rejoin?.stop());

  test('with every member alive it only waits on the blocking read, with the index Consul answered', async () => {
    const store = new FakeStore();
    rejoin = new GossipRejoin(store, log);
    rejoin.start();
    await waitFor('the first read', () => store.reads.length === 1, 2_000, 5);
    expect(store.reads[0].index).toBe(0);
    store.reads[0].resolve({ nodes: [], index: 42 });
    await waitFor('the blocking read', () => store.reads.length === 2, 2_000, 5);
    expect(store.reads[1].index).toBe(42);
    store.reads[1].resolve({ nodes: [], index: 43 }); // a check changed elsewhere: read again, still nothing failed
    await waitFor('the next blocking read', () => store.reads.length === 3, 2_000, 5);
    expect([store.reads[2].index, store.listings, store.joins]).toEqual([43, 0, []]);
  });

  test('a failed member: a join pass, then passes every 2 s while one stays failed, then blocking again', async () => {
    const store = new FakeStore();
    store.failed = [{ name: 'n3', address: '127.0.0.13:8301' }];
    rejoin = new GossipRejoin(store, log);
    rejoin.start();
    await waitFor('the first read', () => store.reads.length === 1, 2_000, 5);
    store.reads[0].resolve({ nodes: ['n3'], index: 50 });
    await waitFor('a join of n3', () => store.joins.length === 1, 2_000, 5);
    expect(store.joins).toEqual(['127.0.0.13:8301']);
    // The next look does not block on index 50 (that would wait for a change): it reads at once, after the pause.
    await waitFor('the read after the pause', () => store.reads.length === 2, 4_000, 5);
    expect(store.reads[1].index).toBe(0);
    store.reads[1].resolve({ nodes: ['n3'], index: 50 });
    await waitFor('a second join of n3', () => store.joins.length === 2, 2_000, 5);
    store.failed = [];
    await waitFor('the read after the second pause', () => store.reads.length === 3, 4_000, 5);
    store.reads[2].resolve({ nodes: [], index: 51 });
    await waitFor('the blocking read', () => store.reads.length === 4, 2_000, 5);
    expect([store.reads[3].index, store.joins.length]).toEqual([51, 2]);
  });

  test('a failed read is retried (index 0); stop() cancels the pending read and nothing follows', async () => {
    const store = new FakeStore();
    rejoin = new GossipRejoin(store, log);
    rejoin.start();
    await waitFor('the first read', () => store.reads.length === 1, 2_000, 5);
    store.reads[0].resolve({ nodes: [], index: 7 });
    await waitFor('the blocking read', () => store.reads.length === 2, 2_000, 5);
    store.reads[1].reject(new Error('consul_unavailable'));
    await waitFor('the retry', () => store.reads.length === 3, 4_000, 5);
    expect(store.reads[2].index).toBe(0);
    let cancelled = false;
    store.reads[2].cancel.once('cancel', () => (cancelled = true));
    rejoin.stop();
    expect(cancelled).toBe(true);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(store.reads.length).toBe(3);
  });
});
