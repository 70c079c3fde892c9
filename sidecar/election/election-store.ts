import type { LockState, MemberEntry, ServiceSpec, TurnKeys } from '../consul/store.js';
import type { FailoverRequest, HistoryEvent, LeaderRecord, MemberRecord, SwitchoverRequest } from '../consul/records.js';

/**
 * What the election needs of the coordination store, and nothing else: `ConsulStore` implements it, the unit
 * tests of the loop a fake. The promises each call makes (which reads are `?consistent`, what a false means,
 * which errors are thrown) are documented where ConsulStore implements them (sidecar/consul/); the safety
 * argument leans on three of them: `readLock(true)` is answered only by a raft leader that checked its
 * quorum, `acquireLock` is a raft write that fails while another session holds the lock or lock-delay is in
 * force, and a session destroyed or invalidated gives its lock the lock-delay while a release does not.
 */
export interface ElectionStore {
  // the node's service and checks on its agent
  registerService(spec: ServiceSpec): Promise<void>;
  setServiceTags(spec: ServiceSpec): Promise<void>;
  passAliveCheck(note: string): Promise<void>;
  reportCheck(id: string, name: string, status: 'passing' | 'warning' | 'critical', output: string, ttlSeconds: number): Promise<void>;
  raftElectionTimeoutMs(): Promise<number | null>;

  // the session and the leader lock
  createSession(lockDelaySeconds: number): Promise<string>;
  destroyStaleSessions(keep: string | null): Promise<string[]>;
  renewSession(id: string): Promise<boolean>;
  sessionExists(id: string): Promise<boolean>;
  readLock(consistent: boolean, timeoutMs?: number): Promise<LockState>;
  watchLock(index: number, waitSeconds: number): Promise<LockState>;
  acquireLock(session: string, leader: LeaderRecord): Promise<boolean>;
  releaseLock(session: string, leader: LeaderRecord): Promise<boolean>;

  // the cluster's other keys
  raiseTerm(): Promise<number>;
  everLed(): Promise<boolean>;
  appendHistory(event: HistoryEvent): Promise<void>;
  putMember(session: string, record: MemberRecord): Promise<boolean>;
  releaseMember(session: string): Promise<void>;
  listMembers(): Promise<MemberEntry[]>;
  /** The dynamic config, the switchover and failover requests and the members, in one read (a turn's). */
  readTurnKeys(): Promise<TurnKeys>;
  writeSwitchover(request: SwitchoverRequest | null): Promise<void>;
  writeFailover(request: FailoverRequest | null): Promise<void>;
}
