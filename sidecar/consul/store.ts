import type { EventEmitter } from 'node:events';
import { AgentService, type GossipMember, type ServiceSpec } from './agent.js';
import { ClusterKeys, type MemberEntry, type TurnKeys } from './cluster-keys.js';
import { ConsulConnection, type StoreOptions } from './connection.js';
import type { DynamicConfig, FailoverRequest, HistoryEvent, LeaderRecord, MemberRecord, SwitchoverRequest } from './records.js';
import { SessionLock, type LockState } from './sessions.js';
import type { ClientTls } from '../shared/https-fetch.js';

export type { GossipMember, ServiceSpec } from './agent.js';
export type { MemberEntry, TurnKeys } from './cluster-keys.js';
export type { StoreOptions } from './connection.js';
export type { LockState } from './sessions.js';

/**
 * The only code that speaks Consul's HTTP API. It maps ha-sidecar's needs (a lock, a term, members, history,
 * dynamic config, the service and its checks) onto KV, sessions and the agent, and validates what it reads.
 * One facade over its parts, each in its own file: the connection (calls, failures, validation), the agent's
 * service and checks, the session and leader lock, and the cluster's other keys. Every method documents its
 * promise where it is implemented. A failed call throws `consul_unavailable` (no answer), `consul_acl_denied`
 * or `consul_refused` (Consul said no): see errors.ts.
 */
export class ConsulStore {
  private readonly consul: ConsulConnection;
  private readonly agent: AgentService;
  private readonly sessions: SessionLock;
  private readonly keys: ClusterKeys;

  constructor(
    opts: StoreOptions,
    readonly node: string,
  ) {
    this.consul = new ConsulConnection(opts, node);
    this.agent = new AgentService(this.consul);
    this.sessions = new SessionLock(this.consul);
    this.keys = new ClusterKeys(this.consul);
  }

  key(name: string): string {
    return this.consul.key(name);
  }

  lastContactAgeSeconds(): number | null {
    return this.consul.lastContactAgeSeconds();
  }

  /** A renewed node certificate (a reload): this node's next connections to its agent show it. */
  renewTls(tls: ClientTls): void {
    this.consul.renewTls(tls);
  }

  // --- agent: service and checks (agent.ts) ---------------------------------------------------------------
  registerService = (spec: ServiceSpec): Promise<void> => this.agent.registerService(spec);
  setServiceTags = (spec: ServiceSpec): Promise<void> => this.agent.setServiceTags(spec);
  passAliveCheck = (note: string): Promise<void> => this.agent.passAliveCheck(note);
  reportCheck = (id: string, name: string, status: 'passing' | 'warning' | 'critical', output: string, ttlSeconds: number): Promise<void> =>
    this.agent.reportCheck(id, name, status, output, ttlSeconds);
  markStopped = (note: string): Promise<void> => this.agent.markStopped(note);
  raftElectionTimeoutMs = (): Promise<number | null> => this.agent.raftElectionTimeoutMs();
  gossipMembers = (): Promise<GossipMember[]> => this.agent.gossipMembers();
  failedGossipMembers = (): Promise<{ name: string; address: string }[]> => this.agent.failedGossipMembers();
  joinGossip = (address: string, timeoutMs: number): Promise<void> => this.agent.joinGossip(address, timeoutMs);
  reloadAgent = (): Promise<void> => this.agent.reload();
  watchFailedNodes = (index: number, waitSeconds: number, cancel: EventEmitter): Promise<{ nodes: string[]; index: number }> => this.agent.watchFailedNodes(index, waitSeconds, cancel);

  // --- session and leader lock (sessions.ts) --------------------------------------------------------------
  createSession = (lockDelaySeconds: number): Promise<string> => this.sessions.createSession(lockDelaySeconds);
  destroyStaleSessions = (keep: string | null): Promise<string[]> => this.sessions.destroyStaleSessions(keep);
  renewSession = (id: string): Promise<boolean> => this.sessions.renewSession(id);
  sessionExists = (id: string): Promise<boolean> => this.sessions.sessionExists(id);
  readLock = (consistent: boolean, timeoutMs?: number): Promise<LockState> => this.sessions.readLock(consistent, timeoutMs);
  watchLock = (index: number, waitSeconds: number): Promise<LockState> => this.sessions.watchLock(index, waitSeconds);
  acquireLock = (session: string, leader: LeaderRecord): Promise<boolean> => this.sessions.acquireLock(session, leader);
  releaseLock = (session: string, leader: LeaderRecord): Promise<boolean> => this.sessions.releaseLock(session, leader);

  // --- the cluster's other keys (cluster-keys.ts) ---------------------------------------------------------
  raiseTerm = (): Promise<number> => this.keys.raiseTerm();
  everLed = (): Promise<boolean> => this.keys.everLed();
  readTerm = (): Promise<number> => this.keys.readTerm();
  appendHistory = (event: HistoryEvent): Promise<void> => this.keys.appendHistory(event);
  readHistory = (): Promise<HistoryEvent[]> => this.keys.readHistory();
  putMember = (session: string, record: MemberRecord): Promise<boolean> => this.keys.putMember(session, record);
  releaseMember = (session: string): Promise<void> => this.keys.releaseMember(session);
  listMembers = (): Promise<MemberEntry[]> => this.keys.listMembers();
  readTurnKeys = (): Promise<TurnKeys> => this.keys.readTurnKeys();
  deleteMember = (name: string): Promise<void> => this.keys.deleteMember(name);
  readDynamicConfig = (): Promise<{ config: DynamicConfig; index: number }> => this.keys.readDynamicConfig();
  writeDynamicConfig = (config: DynamicConfig, index: number): Promise<boolean> => this.keys.writeDynamicConfig(config, index);
  readSwitchover = (): Promise<SwitchoverRequest | null> => this.keys.readSwitchover();
  writeSwitchover = (request: SwitchoverRequest | null): Promise<void> => this.keys.writeSwitchover(request);
  readFailover = (): Promise<FailoverRequest | null> => this.keys.readFailover();
  writeFailover = (request: FailoverRequest | null): Promise<void> => this.keys.writeFailover(request);
  initialize = (clusterId: string): Promise<{ created: boolean; clusterId: string }> => this.keys.initialize(clusterId);
  readInitialize = (): Promise<string | null> => this.keys.readInitialize();
}
