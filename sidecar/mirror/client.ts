// Over 400 lines, not split: MirrorClient is one connection's state machine (the frame queue, the target and
// local manifests, the sequences reached, the files requested and in flight), and every handler reads and
// changes that state; the pure parts already live apart (manifest.ts plans, applier.ts writes, protocol.ts
// frames, scanner.ts walks), and spreading the rest over modules would only pass the state around.
import { createHash, type Hash } from 'node:crypto';
import type { WriteStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { Applier } from './applier.js';
import { compactEntry, manifestDigest, planChanges, unsafeEntryReason, type Entry, type FileEntry, type Manifest } from './manifest.js';
import { FrameDecoder, FrameError, KIND_DATA, PROTOCOL_VERSION, encodeMessage, parseMessage, serverMessage, type Frame, type ServerMessage } from './protocol.js';
import { Scanner, checkRoot, rescanPauseMs } from './scanner.js';
import type { MirrorState } from './state.js';
import { clientTlsOptions } from './tls.js';

/** Without a frame (heartbeats come every second) for this long, the leader is taken for gone. */
const SILENCE_MS = 5000;
const RETRY_MIN_MS = 200;
/** Received files fsynced and renamed at once: enough to overlap the flushes, few enough to bound open temporaries. */
const MAX_PENDING_INSTALLS = 16;
const RETRY_MAX_MS = 2000;
/**
 * Requests (`get`) out at once; the rest wait in `unsent` and go as answers arrive. Enough to keep the
 * leader, which serves them one after another, always busy; without the bound a first mirror of 100,000 files
 * wrote 100,000 requests at once, which both ends then held in their socket buffers and queues.
 */
const GETS_IN_FLIGHT = 128;

export type FollowerState = 'connecting' | 'syncing' | 'in sync' | 'behind' | 'refused' | 'error';

export interface FollowerStatus {
  state: FollowerState;
  leader: string;
  /** The leader's sequence this copy has fully reached. */
  appliedSeq: number;
  /** The leader's newest sequence heard of. */
  leaderSeq: number;
  detail: string;
}

export interface MirrorClientOptions {
  root: string;
  host: string;
  port: number;
  leader: string;
  node: string;
  clusterToken: string;
  clusterName: string;
  rescanMs: number;
  state: MirrorState;
  log: Logger;
  metrics: Metrics;
}

interface Incoming {
  entry: FileEntry;
  hash: Hash;
  temp: string;
  stream: WriteStream;
}

/**
 * A standby's side: one connection to the current leader. It sends its term and last sequence, takes the
 * leader's manifest and changes, fetches what differs, writes each file to a temporary name beside it,
 * checks its hash, sets mode and mtime and renames it into place; removals come after additions.
 */
export class MirrorClient {
  private socket: tls.TLSSocket | null = null;
  private stopped = false;
  private retryMs = RETRY_MIN_MS;
  private target: Manifest = new Map();
  private local: Manifest = new Map();
  private snapshotDone = false;
  private targetSeq = 0;
  private appliedSeq = 0;
  private leaderSeq = 0;
  private serverTerm = 0;
  private serverEpoch = '';
  /** An incremental catch-up: the leader's manifest digest at `seq`, checked once the changes up to it are in. */
  private catchUp: { seq: number; digest: string } | null = null;
  /** The last rebuild did not match the leader's manifest: the next hello asks for the whole manifest. */
  private wantManifest = false;
  /** Installs of received files under way, by path (startInstall). */
  private readonly installs = new Map<string, Promise<void>>();
  /** Files asked for and not yet answered: the newest entry asked (one answer due, more in `dueAgain`). */
  private requested = new Map<string, FileEntry>();
  /** Answers due beyond the first, for the few paths asked again (newer content) before they were answered. */
  private readonly dueAgain = new Map<string, number>();
  /** Requests not yet written (GETS_IN_FLIGHT are out), from `unsentHead` on, and how many are out. */
  private unsent: string[] = [];
  private unsentHead = 0;
  private inFlight = 0;
  private incoming: Incoming | null = null;
  private state: FollowerState = 'connecting';
  private detail = '';
  /** Frames received and not yet handled; the socket is paused whenever handling one has to wait. */
  private queue: Frame[] = [];
  private pumping = false;
  private reconciling = false;
  /** Plan over every path (after a snapshot or a local rescan), else only over the paths changes named. */
  private fullPlan = true;
  /**
   * Paths named since they were last planned, each with the count at its newest naming: a pass forgets
   * only the paths not named again while it ran (a change or a failed answer arriving meanwhile stays).
   */
  private touched = new Map<string, number>();
  private touches = 0;
  private reconcileAgain = false;
  private silence: NodeJS.Timeout | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly scanner: Scanner;
  private readonly applier: Applier;

  constructor(private readonly opts: MirrorClientOptions) {
    this.scanner = new Scanner(opts.root, opts.log, (path) => this.local.get(path));
    this.applier = new Applier(opts.root);
  }

  get leader(): string {
    return this.opts.leader;
  }

  get host(): string {
    return this.opts.host;
  }

  /** The term of the leader this client is connected to (0 before a welcome). */
  get term(): number {
    return this.serverTerm;
  }

  status(): FollowerStatus {
    return { state: this.state, leader: this.opts.leader, appliedSeq: this.appliedSeq, leaderSeq: this.leaderSeq, detail: this.detail };
  }

  start(): void {
    this.scheduleRescan();
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.silence, this.rescanTimer, this.retryTimer]) if (t) clearTimeout(t);
    this.socket?.destroy();
    if (this.incoming) void this.applier.discard(this.incoming.temp);
  }

  private setState(state: FollowerState, detail = ''): void {
    this.state = state;
    this.detail = detail;
    this.opts.metrics.filesLag.set(state === 'in sync' || state === 'behind' || state === 'syncing' ? this.leaderSeq - this.appliedSeq : -1);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      await checkRoot(this.opts.root);
      await this.applier.removeLeftovers();
    } catch (e) {
      this.setState('error', errorMessage(e));
      this.opts.log.error(`files: ${errorMessage(e)}; nothing is applied until it is back`, { code: (e as { code?: string }).code });
      return this.retry();
    }
    this.snapshotDone = false;
    this.catchUp = null;
    this.target = new Map();
    this.requested.clear();
    this.dueAgain.clear();
    this.unsent = [];
    this.unsentHead = this.inFlight = 0;
    this.queue = [];
    this.pumping = false;
    const decoder = new FrameDecoder();
    const { state } = this.opts;
    const socket = tls.connect({ host: this.opts.host, port: this.opts.port, ...clientTlsOptions(this.opts.clusterToken, this.opts.clusterName) });
    this.socket = socket;
    socket.once('secureConnect', () => {
      this.retryMs = RETRY_MIN_MS;
      // Its position lets the leader send only the changes since; an empty epoch asks for the manifest.
      const epoch = this.wantManifest ? '' : state.epoch;
      socket.write(encodeMessage({ t: 'hello', v: PROTOCOL_VERSION, node: this.opts.node, term: state.highestTerm, lastSeq: state.lastSeq, epoch }));
    });
    socket.on('data', (chunk: Buffer) => {
      this.heard();
      try {
        this.queue.push(...decoder.push(chunk));
      } catch (e) {
        return this.fail(e instanceof FrameError ? e.code : 'frame_bad_message', errorMessage(e));
      }
      if (!this.pumping) void this.pump(socket);
    });
    socket.on('error', (e) => {
      if (this.socket !== socket) return;
      this.opts.metrics.filesErrors.inc({ reason: 'connection' });
      this.setState('connecting', `${this.opts.leader}: ${errorMessage(e)}`);
      this.opts.log.debug('files: connection to the leader failed', { leader: this.opts.leader, error: errorMessage(e) });
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.incoming) void this.applier.discard(this.incoming.temp);
      this.incoming = null;
      if (this.state !== 'refused' && this.state !== 'error') this.setState('connecting', `connection to ${this.opts.leader} closed`);
      this.retry();
    });
  }

  private retry(): void {
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => void this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private heard(): void {
    if (this.silence) clearTimeout(this.silence);
    this.silence = setTimeout(() => this.fail('leader_silent', `no word from ${this.opts.leader} for ${SILENCE_MS} ms`), SILENCE_MS);
  }

  private fail(code: string, why: string): void {
    this.opts.metrics.filesErrors.inc({ reason: code });
    this.opts.log.warn(`files: closing the connection to the leader: ${why}`, { code, leader: this.opts.leader });
    this.socket?.destroy();
  }

  private refuse(code: string, why: string): void {
    this.setState('refused', why);
    this.fail(code, why);
  }

  /**
   * Handles queued frames in order. File data is written at once; when the disk is slower than the network,
   * or a message needs the disk (open, rename, scan), the socket pauses, so memory holds at most one chunk
   * read from the network ahead of the disk.
   */
  private async pump(socket: tls.TLSSocket): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && this.socket === socket) {
        const frame = this.queue.shift() as Frame;
        if (frame.kind === KIND_DATA) {
          if (!this.incoming) throw new FrameError('frame_bad_kind', 'data outside a file');
          this.incoming.hash.update(frame.data);
          this.opts.metrics.filesBytes.inc({ direction: 'received' }, frame.data.length);
          if (!this.incoming.stream.write(frame.data)) {
            this.pauseReading(socket);
            const stream = this.incoming.stream;
            await new Promise<void>((r) => stream.once('drain', () => r()));
          }
          continue;
        }
        this.pauseReading(socket);
        await this.handle(frame.message);
      }
    } catch (e) {
      this.fail('apply_failed', errorMessage(e));
    } finally {
      // A pump of a connection already replaced leaves the flag to the new connection's pump: clearing it
      // let a second pump start beside that one, and frames were handled out of order ("unexpected file").
      if (this.socket === socket) {
        this.pumping = false;
        this.resumeReading(socket);
      }
    }
  }

  /**
   * Stops reading while the disk catches up (a write, an fsync, a rename). The silence timer stops with it:
   * the leader's heartbeats wait unread behind the paused socket, and an fsync of a large file on a busy disk
   * takes longer than SILENCE_MS, which closed the connection, dropped the half-received file and started
   * it over, in a loop (CI: a restarted standby never caught up with a 200 MB file in 120 s).
   */
  private pauseReading(socket: tls.TLSSocket): void {
    socket.pause();
    if (this.silence) clearTimeout(this.silence);
  }

  private resumeReading(socket: tls.TLSSocket): void {
    socket.resume();
    this.heard();
  }

  private async handle(message: unknown): Promise<void> {
    const m = parseMessage(serverMessage, message);
    switch (m.t) {
      case 'refuse':
        return this.refuse(m.code, `the leader refused us: ${m.message}`);
      case 'welcome':
        return this.welcome(m);
      case 'snapshot':
        for (const e of m.entries) this.acceptEntry(e);
        this.targetSeq = this.leaderSeq = m.seq;
        if (m.last) {
          this.wantManifest = false;
          this.snapshotDone = true;
          this.fullPlan = true;
          this.local = await this.scanLocalCopy();
          const plan = planChanges(this.target, this.local);
          this.opts.log.info('files: catching up with the leader', { leader: this.opts.leader, seq: m.seq, fetch: plan.fetch.length, remove: plan.remove.length });
          this.setState('syncing');
          this.scheduleReconcile();
        }
        return;
      case 'change':
        for (const e of m.upserts) {
          this.acceptEntry(e);
          this.touch(e.path);
        }
        for (const p of m.removed) {
          this.target.delete(p);
          this.touch(p);
        }
        this.targetSeq = this.leaderSeq = m.seq;
        if (this.catchUp && m.seq >= this.catchUp.seq) this.checkCatchUp();
        if (this.snapshotDone) this.scheduleReconcile();
        return;
      case 'heartbeat':
        this.leaderSeq = Math.max(this.leaderSeq, m.seq);
        if (this.state === 'in sync' && this.leaderSeq > this.appliedSeq) this.setState('behind');
        return;
      case 'file':
        return this.beginFile(m.path);
      case 'end':
        return this.endFile(m.path, m.size, m.changed);
      case 'missing':
        this.answered(m.path);
        this.touch(m.path);
        if (this.requested.size === 0) this.scheduleReconcile();
        return;
    }
  }

  private async welcome(m: Extract<ServerMessage, { t: 'welcome' }>): Promise<void> {
    const { state } = this.opts;
    // Design rule 6: data from a leader older than the newest term seen could be a deposed leader's.
    if (m.term < state.highestTerm) return this.refuse('stale_term', `${m.node} leads term ${m.term}, but term ${state.highestTerm} has been seen`);
    if (state.epoch !== m.epoch) this.appliedSeq = 0; // sequences count within one leader's epoch
    // The epoch is recorded with the first sequence reached in it (reachedSeq), never before: a position
    // names what is installed, and nothing of this epoch is yet.
    state.update({ highestTerm: m.term });
    this.serverTerm = m.term;
    this.serverEpoch = m.epoch;
    this.leaderSeq = m.seq;
    this.opts.log.info('files: following the leader', { leader: m.node, term: m.term, seq: m.seq, ...(m.since === undefined ? {} : { since: m.since }) });
    if (m.since === undefined) return;
    if (m.epoch !== state.epoch || m.since !== state.lastSeq || m.digest === undefined) throw new FrameError('frame_bad_message', `changes since ${m.since} of ${m.epoch}, but this copy is at ${state.lastSeq} of ${state.epoch}`);
    // The copy on disk is the leader's directory at `since` (the position is recorded only after it is
    // installed): it is the target the changes that follow apply to. The digest check below catches a copy
    // edited while this sidecar was down.
    this.local = await this.scanLocalCopy();
    this.target = new Map(this.local);
    this.targetSeq = this.appliedSeq = m.since;
    this.catchUp = { seq: m.seq, digest: m.digest };
    this.snapshotDone = true;
    this.fullPlan = false;
    this.setState('syncing');
    if (m.seq === m.since) this.checkCatchUp();
    this.scheduleReconcile();
  }

  /** The rebuilt target must be the leader's manifest; if not, the connection starts over with the whole manifest. */
  private checkCatchUp(): void {
    const expected = this.catchUp?.digest;
    this.catchUp = null;
    if (manifestDigest(this.target) === expected) return;
    this.wantManifest = true;
    this.snapshotDone = false;
    this.fail('files_catch_up_mismatch', 'the copy rebuilt from the changes since its position differs from the leader\'s manifest (edited while the sidecar was down?); asking for the whole manifest');
  }

  /**
   * Scans this copy while the socket is paused (the frames behind wait for the result). Nothing is read
   * meanwhile, heartbeats included, so the silence timer waits too: a scan of 100,000 files takes longer
   * than SILENCE_MS, and would otherwise end the connection, and the next one, in a loop.
   */
  private async scanLocalCopy(): Promise<Manifest> {
    if (this.silence) clearTimeout(this.silence);
    try {
      return await this.scanner.scan();
    } finally {
      if (this.socket) this.heard();
    }
  }

  private acceptEntry(e: Entry): void {
    const unsafe = unsafeEntryReason(e);
    if (unsafe) {
      this.opts.metrics.filesErrors.inc({ reason: 'path_refused' });
      this.opts.log.warn(`files: refusing an entry from the leader: ${unsafe}`, { code: 'files_path_refused', path: e.path });
      return;
    }
    this.target.set(e.path, compactEntry(e));
  }

  private async beginFile(path: string): Promise<void> {
    const entry = this.requested.get(path);
    if (!entry || this.incoming) throw new FrameError('frame_bad_message', `unexpected file ${path}`);
    const { temp, stream } = await this.applier.openTemp(path);
    this.incoming = { entry, temp, stream, hash: createHash('sha256') };
  }

  private async endFile(path: string, size: number, changed: boolean): Promise<void> {
    const incoming = this.incoming;
    if (!incoming || incoming.entry.path !== path) throw new FrameError('frame_bad_message', `unexpected end of ${path}`);
    this.incoming = null;
    this.answered(path);
    await new Promise<void>((resolve, reject) => {
      incoming.stream.once('error', reject);
      incoming.stream.end(() => resolve());
    });
    const sha256 = incoming.hash.digest('hex');
    const wanted = this.target.get(path);
    // Only bytes whose hash is the one the leader's manifest names now are installed; otherwise the file
    // changed meanwhile, and the leader's next change names the content to fetch.
    if (!changed && wanted?.type === 'file' && wanted.sha256 === sha256 && wanted.size === size) {
      await this.startInstall(incoming.temp, wanted);
    } else {
      if (!changed && wanted?.type === 'file' && wanted.size === size && wanted.sha256 !== sha256) {
        this.opts.metrics.filesErrors.inc({ reason: 'hash_mismatch' });
        this.opts.log.warn('files: received content does not match the leader\'s hash; discarded', { code: 'files_hash_mismatch', path });
      }
      await this.applier.discard(incoming.temp);
      this.touch(path);
    }
    // Re-planning after every file would cost the whole manifest each time; the last answer finishes the pass.
    if (this.requested.size === 0) this.scheduleReconcile();
  }

  /**
   * Installs a received file in the background (fsync, then rename): the fsyncs of several files overlap,
   * which the file system commits together, instead of one disk flush per file in a row. At most
   * MAX_PENDING_INSTALLS run at once; one path's installs run in order (a newer content is renamed last);
   * every reconcile pass waits for all of them, so nothing is planned, recorded or reported before its rename.
   */
  private async startInstall(temp: string, entry: FileEntry): Promise<void> {
    const before = this.installs.get(entry.path);
    const job = (async () => {
      await before;
      try {
        await this.applier.install(temp, entry);
        this.local.set(entry.path, entry);
        const st = await lstat(join(this.opts.root, entry.path)).catch(() => null);
        if (st) this.scanner.remember(entry, st);
        this.opts.metrics.filesTransferred.inc({ direction: 'received' });
      } catch (e) {
        this.opts.metrics.filesErrors.inc({ reason: 'apply_failed' });
        this.opts.log.error('files: installing a received file failed', { path: entry.path, error: errorMessage(e) });
        await this.applier.discard(temp);
        this.touch(entry.path);
        this.fullPlan = true;
      }
    })();
    this.installs.set(entry.path, job);
    void job.finally(() => {
      if (this.installs.get(entry.path) === job) this.installs.delete(entry.path);
    });
    while (this.installs.size >= MAX_PENDING_INSTALLS) await Promise.race(this.installs.values());
  }

  private answered(path: string): void {
    const again = this.dueAgain.get(path) ?? 0;
    if (again > 1) this.dueAgain.set(path, again - 1);
    else if (again === 1) this.dueAgain.delete(path);
    else this.requested.delete(path);
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.sendGets();
  }

  /** Writes waiting requests while fewer than GETS_IN_FLIGHT are out. */
  private sendGets(): void {
    while (this.socket && this.inFlight < GETS_IN_FLIGHT && this.unsentHead < this.unsent.length) {
      this.socket.write(encodeMessage({ t: 'get', path: this.unsent[this.unsentHead++] }));
      this.inFlight++;
    }
    if (this.unsentHead === this.unsent.length) {
      this.unsent = [];
      this.unsentHead = 0;
    }
  }

  private scheduleReconcile(): void {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return;
    }
    this.reconciling = true;
    setImmediate(() => void this.reconcile());
  }

  /** One pass towards the target: directories, fixes in place and symlinks now; fetches asked; removals last. */
  private async reconcile(): Promise<void> {
    try {
      do {
        this.reconcileAgain = false;
        while (this.installs.size > 0) await Promise.all(this.installs.values());
        if (!this.snapshotDone || !this.socket) return;
        const seq = this.targetSeq;
        const full = this.fullPlan;
        const named = full ? [] : [...this.touched];
        const paths = named.map(([p]) => p);
        const plan = full ? planChanges(this.target, this.local) : planChanges(subset(this.target, paths), subset(this.local, paths));
        for (const d of plan.dirs) await this.applied(d, () => this.applier.dir(d));
        for (const f of plan.touch) await this.applied(f, () => this.applier.touch(f));
        for (const l of plan.symlinks) await this.applied(l, () => this.applier.symlink(l));
        for (const f of plan.fetch) {
          const asked = this.requested.get(f.path);
          if (asked && asked.sha256 === f.sha256) continue;
          if (asked) this.dueAgain.set(f.path, (this.dueAgain.get(f.path) ?? 0) + 1);
          this.requested.set(f.path, f);
          this.unsent.push(f.path);
        }
        this.sendGets();
        if (plan.fetch.length === 0 && this.requested.size === 0) {
          for (const p of plan.remove) {
            await this.applier.remove(p);
            this.local.delete(p); // children were removed first: they are in the plan too
          }
          if (full) this.fullPlan = false;
          this.forget(named);
          if (!this.reconcileAgain && this.targetSeq === seq) {
            // Nothing is fetched while no request is out, so the directory is the target at `seq` once the
            // renames and removals are fsynced.
            await this.applier.syncDirectories();
            this.reachedSeq(seq);
          }
        } else {
          // Everything this pass planned is applied or requested, and a request whose answer is not installed
          // names its path again (endFile, 'missing', startInstall): only the removals, which wait for the
          // fetches, are planned again. Replanning every path named since the last complete pass made each
          // pass of a mirror of 100,000 new files cost up to 100,000 entries, pass after pass.
          this.forget(named);
          for (const p of plan.remove) this.touch(p);
          this.setState(this.state === 'syncing' ? 'syncing' : 'behind');
        }
      } while (this.reconcileAgain);
    } catch (e) {
      this.opts.metrics.filesErrors.inc({ reason: 'apply_failed' });
      this.opts.log.error('files: applying the leader\'s state failed', { error: errorMessage(e) });
      this.setState('error', errorMessage(e));
    } finally {
      this.reconciling = false;
    }
  }

  private touch(path: string): void {
    this.touched.set(path, ++this.touches);
  }

  /** Forgets the paths a pass planned, unless named again since it read them. */
  private forget(named: [string, number][]): void {
    for (const [p, n] of named) if (this.touched.get(p) === n) this.touched.delete(p);
  }

  private async applied(entry: Entry, step: () => Promise<void>): Promise<void> {
    await step();
    this.local.set(entry.path, entry);
  }

  /**
   * Every file up to `seq` is installed and fsynced (files before their rename, directories since): only now
   * is the position recorded (fsynced too) and reported to the leader, whose synchronous wait counts it. A
   * position this node reports, before or after a crash, is therefore on its disk.
   */
  private reachedSeq(seq: number): void {
    this.appliedSeq = seq;
    this.opts.metrics.filesSequence.set(seq);
    this.setState(this.leaderSeq > seq ? 'behind' : 'in sync');
    this.opts.state.update({ lastSeq: seq, epoch: this.serverEpoch, epochTerm: this.serverTerm });
    this.socket?.write(encodeMessage({ t: 'installed', seq }));
  }

  /** The next periodic rescan of the copy, after a pause that grows with the tree (`rescanPauseMs`). */
  private scheduleRescan(): void {
    if (this.stopped) return;
    this.rescanTimer = setTimeout(() => {
      const next = () => this.scheduleRescan();
      this.rescanLocal().then(next, next);
    }, rescanPauseMs(this.opts.rescanMs, this.local.size));
  }

  /** Finds local edits (events on a standby are not watched) and puts the leader's state back. */
  private async rescanLocal(): Promise<void> {
    if (!this.snapshotDone || this.reconciling || this.requested.size > 0 || this.incoming || this.installs.size > 0) return;
    const before = this.local;
    const now = await this.scanner.scan().catch(() => null);
    if (!now || this.reconciling || this.requested.size > 0) return;
    const edits = planChanges(before, now);
    const changed = edits.dirs.length + edits.fetch.length + edits.touch.length + edits.symlinks.length + edits.remove.length;
    this.local = now;
    if (changed > 0) {
      this.fullPlan = true;
      const sample = [...edits.fetch, ...edits.touch, ...edits.dirs, ...edits.symlinks].map((e) => e.path).concat(edits.remove).slice(0, 5);
      this.opts.log.warn('files: local changes on a standby are overwritten by the leader\'s state', { code: 'files_local_edit', changed, sample });
      this.scheduleReconcile();
    }
  }
}

/** The entries of `paths` only: a plan over what changes named costs their number, not the manifest's size. */
function subset(manifest: Manifest, paths: string[]): Manifest {
  const out: Manifest = new Map();
  for (const p of paths) {
    const e = manifest.get(p);
    if (e) out.set(p, e);
  }
  return out;
}
