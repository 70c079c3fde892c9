// Over 500 lines, not split: the server and its per-follower Session share the manifest, the sequence and
// the serving check, and a Session is the server's private helper; the framing, manifest and TLS parts already
// live in protocol.ts, manifest.ts and tls.ts.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { manifestDelta, manifestDigest, type Manifest } from './manifest.js';
import { unsafePathReason } from './paths.js';
import { FrameDecoder, FrameError, KIND_DATA, PROTOCOL_VERSION, batches, clientMessage, drained, encodeData, encodeMessage, parseMessage, type ServerMessage } from './protocol.js';
import { Scanner, rescanPauseMs } from './scanner.js';
import { serverTlsOptions } from './tls.js';
import { DirectoryWatch } from './watch.js';

/**
 * Followers hear from the leader at least this often, so a dead connection is noticed (SILENCE_MS, 5 s, on
 * the follower). Costs one 40-byte frame a second per follower and a timer wake-up on the leader.
 */
const HEARTBEAT_MS = 1000;
/** A connection that has not said hello by then is closed. */
const HELLO_TIMEOUT_MS = 10_000;
/** File chunks: large enough for throughput, small enough that memory stays flat. */
const CHUNK_BYTES = 256 * 1024;
/**
 * Entries (upserts and removals) of the newest changes kept for followers that reconnect: one behind by up to
 * this many gets only the changes since its position, not the manifest. Costs up to about 2.5 MB of heap
 * (about 250 bytes an entry); a follower further behind gets the manifest, as before.
 */
const CHANGE_LOG_ENTRIES = 10_000;
/** Watch events are gathered this long, so a burst becomes one change. */
const EVENT_BATCH_MS = 5;
/** A path still being written when `syncPoint` reads it is read again this much later. */
const SETTLE_MS = 60;

/** A synchronous-files wait (`waitInstalled`): settled once an accepted follower has installed `seq`. */
interface InstallWaiter {
  seq: number;
  accepts: (node: string) => boolean;
  resolve: (node: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface MirrorServerOptions {
  root: string;
  address: string;
  port: number;
  term: number;
  node: string;
  clusterToken: string;
  clusterName: string;
  rescanMs: number;
  /** False once this node must not serve: checked before every frame, so nothing leaves after a demote. */
  mayServe: () => boolean;
  log: Logger;
  metrics: Metrics;
}

/**
 * The leader's side: keeps a manifest of the directory current from watch events and a periodic rescan
 * (events can be lost), numbers every change with a rising sequence, and streams changes and file content
 * to each connected follower.
 */
export class MirrorServer {
  readonly epoch = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  private manifest: Manifest = new Map();
  private seq = 0;
  private readonly scanner: Scanner;
  private readonly sessions = new Set<Session>();
  private readonly dirty = new Set<string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly watch: DirectoryWatch;
  private server: tls.Server | null = null;
  /** Manifest updates run one at a time, in the order they were read from disk. */
  private work: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Set once the first scan is in the manifest and the port listens: sequences only rise from here on. */
  private listening = false;
  private readonly waiters = new Set<InstallWaiter>();
  /** The newest changes, oldest first, and the sequence from which they are complete (`logFloor`). */
  private readonly changeLog: Extract<ServerMessage, { t: 'change' }>[] = [];
  private logEntries = 0;
  private logFloor = 0;

  constructor(private readonly opts: MirrorServerOptions) {
    this.watch = new DirectoryWatch(opts.root, (path) => this.markDirty(path), opts.log);
    this.scanner = new Scanner(opts.root, opts.log, (path) => this.manifest.get(path), (dir) => this.watch.add(dir));
  }

  get sequence(): number {
    return this.seq;
  }

  get entries(): number {
    return this.manifest.size;
  }

  get followers(): number {
    return [...this.sessions].filter((s) => s.live).length;
  }

  /**
   * Scans (watching each directory before it is listed), then listens: a follower never sees a manifest older
   * than the watcher's first event.
   */
  async start(): Promise<void> {
    const { root, log } = this.opts;
    this.manifest = await this.scanner.scan();
    this.seq = this.logFloor = this.manifest.size;
    if (this.stopped) return void (await this.watch.close());
    this.publishGauges();
    if (this.stopped) return;
    this.server = tls.createServer(serverTlsOptions(this.opts.clusterToken, this.opts.clusterName), (socket) => this.accept(socket));
    this.server.on('tlsClientError', (e, socket) => {
      this.opts.metrics.filesErrors.inc({ reason: 'tls_refused' });
      log.warn('files: refused a peer: TLS handshake failed (wrong cluster key, or not TLS)', { code: 'files_peer_refused', peer: socket.remoteAddress, error: errorMessage(e) });
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.opts.port, this.opts.address, () => resolve());
    });
    this.server.on('error', (e) => log.error('files: server error', { error: errorMessage(e) }));
    this.listening = true;
    this.scheduleRescan();
    this.heartbeat = setInterval(() => this.broadcast({ t: 'heartbeat', seq: this.seq }), HEARTBEAT_MS);
    log.info('files: serving the directory', { root, entries: this.manifest.size, seq: this.seq, term: this.opts.term, port: this.opts.port });
  }

  /**
   * Stops serving at once: the flag is set and every connection destroyed before the first await, so no
   * frame leaves after a demote; a follower then only ever applies data from the current leader.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.sessions) s.close();
    this.sessions.clear();
    this.server?.close();
    for (const timer of [this.flushTimer, this.rescanTimer, this.heartbeat]) if (timer) clearTimeout(timer);
    for (const w of this.waiters) this.settle(w, new SidecarError('files_not_serving', `${this.opts.node} stopped serving its files before a standby had installed them`, 503));
    await this.watch.close();
  }

  /**
   * The sequence by which `paths` as they are on disk now are in the manifest: each is read again (after
   * whatever the watcher queued before) until it holds still, so a change made before the call is numbered
   * at or below the answer. Fails while the server has not yet listened (its first scan would renumber).
   */
  async syncPoint(paths: string[], deadline: number): Promise<number> {
    if (!this.listening || !this.serving()) throw new SidecarError('files_not_serving', `${this.opts.node} does not serve its files (yet)`, 503);
    for (const p of paths) {
      const reason = unsafePathReason(p);
      if (reason) throw new SidecarError('bad_request', `invalid path ${JSON.stringify(p)}: ${reason}`, 400);
    }
    let pending = paths;
    while (pending.length > 0) {
      if (Date.now() > deadline) throw new SidecarError('files_sync_timeout', `${pending[0]} is still being written`, 504);
      pending = await this.queued(() => this.update(pending));
      if (pending.length > 0) await new Promise((r) => setTimeout(r, SETTLE_MS));
    }
    return this.seq;
  }

  /**
   * Resolves with the name of the first follower `accepts` takes that has installed and fsynced every change
   * up to `seq` (it says so only after the fsyncs, see MirrorClient.reachedSeq); fails at `deadline`, or when
   * this node stops serving.
   */
  waitInstalled(seq: number, accepts: (node: string) => boolean, deadline: number): Promise<string> {
    if (!this.serving()) return Promise.reject(new SidecarError('files_not_serving', `${this.opts.node} stopped serving its files`, 503));
    const done = [...this.sessions].find((s) => s.live && s.installedSeq >= seq && accepts(s.node));
    if (done) return Promise.resolve(done.node);
    return new Promise((resolve, reject) => {
      const waiter: InstallWaiter = {
        seq,
        accepts,
        resolve,
        reject,
        timer: setTimeout(() => this.settle(waiter, new SidecarError('files_sync_timeout', `no synchronous standby installed sequence ${seq} within the wait`, 504)), Math.max(0, deadline - Date.now())),
      };
      this.waiters.add(waiter);
    });
  }

  /** Whether a follower `accepts` takes is connected (a synchronous wait could be answered). */
  hasFollower(accepts: (node: string) => boolean): boolean {
    return [...this.sessions].some((s) => s.live && accepts(s.node));
  }

  installed(session: Session): void {
    for (const w of this.waiters) if (session.installedSeq >= w.seq && w.accepts(session.node)) this.settle(w, session.node);
  }

  private settle(w: InstallWaiter, outcome: string | Error): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    if (typeof outcome === 'string') w.resolve(outcome);
    else w.reject(outcome);
  }

  private serving(): boolean {
    return !this.stopped && this.opts.mayServe();
  }

  private markDirty(path: string): void {
    if (path === '' || path.startsWith('..')) return;
    this.dirty.add(path);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = null;
      this.enqueue(() => this.flush());
    }, EVENT_BATCH_MS);
  }

  private enqueue(step: () => Promise<unknown>): void {
    void this.queued(step).catch(() => undefined);
  }

  /** Runs `step` after every manifest update queued before it; its failure is logged (and returned). */
  private queued<T>(step: () => Promise<T>): Promise<T> {
    const run = this.work.then(step);
    this.work = run.then(
      () => undefined,
      (e) => {
        this.opts.metrics.filesErrors.inc({ reason: 'scan' });
        this.opts.log.error('files: manifest update failed', { code: (e as { code?: string }).code, error: errorMessage(e) });
      },
    );
    return run;
  }

  private async flush(): Promise<void> {
    const paths = [...this.dirty];
    this.dirty.clear();
    await this.update(paths);
  }

  /** Reads `paths` again and applies what changed (a directory brings its whole subtree); returns those still being written. */
  private async update(paths: string[]): Promise<string[]> {
    if (this.stopped) return [];
    const before: Manifest = new Map();
    const after: Manifest = new Map();
    const unstable: string[] = [];
    for (const path of paths) {
      const entry = await this.scanner.entry(path, true);
      if (entry === 'unstable') {
        this.markDirty(path); // still being written: announced once it holds still for one hash
        unstable.push(path);
        continue;
      }
      const old = this.manifest.get(path);
      if (old) before.set(path, old);
      if (entry) after.set(path, entry);
      if (old?.type === 'dir' || entry?.type === 'dir') {
        // A directory that went or came (or was renamed): everything below it goes or comes with it.
        const subtree = [path];
        for (const [p, e] of this.manifest) {
          if (!p.startsWith(`${path}/`)) continue;
          before.set(p, e);
          subtree.push(p);
        }
        if (entry?.type === 'dir') {
          // Watched afresh as they are listed: this may be another directory than the one watched by that name.
          this.watch.drop(subtree);
          const below = await this.scanner.scanBelow(path);
          for (const [p, e] of below) after.set(p, e);
        }
      }
    }
    this.apply(before, after);
    return unstable;
  }

  /** The next periodic rescan, after a pause that grows with the tree (`rescanPauseMs`). */
  private scheduleRescan(): void {
    if (this.stopped) return;
    this.rescanTimer = setTimeout(() => {
      const next = () => this.scheduleRescan();
      this.queued(() => this.rescan()).then(next, next);
    }, rescanPauseMs(this.opts.rescanMs, this.manifest.size));
  }

  private async rescan(): Promise<void> {
    const now = await this.scanner.scan();
    const { upserts, removed, sample } = this.apply(this.manifest, now);
    if (upserts + removed > 0) {
      // Events can be lost (an inotify queue overflow, or a directory past the inotify watch limit).
      this.opts.log.info('files: the rescan found changes the watcher had not reported', { upserts, removed, sample });
    }
  }

  /** Applies the difference between `before` and `after` (same paths) to the manifest; one sequence per change. */
  private apply(before: Manifest, after: Manifest): { upserts: number; removed: number; sample: string[] } {
    // One delta per update: at 100,000 entries each costs about 100 ms of event loop.
    const delta = manifestDelta(before, after);
    // The same value read again with a new stamp (a chmod to the same mode, say): kept, so that the
    // manifest, which is the scanner's hash cache, does not make every later read hash the file again.
    for (const e of delta.reread) this.manifest.set(e.path, e);
    if (delta.upserts.length + delta.removed.length === 0) return { upserts: 0, removed: 0, sample: [] };
    for (const p of delta.removed) this.manifest.delete(p);
    for (const e of delta.upserts) this.manifest.set(e.path, e);
    // A directory that went, or became something else, is watched no more (its new self is, once listed).
    this.watch.drop(delta.removed);
    this.watch.drop(delta.upserts.filter((e) => e.type !== 'dir').map((e) => e.path));
    // Large changes (a tree moved in) go out in batches under the frame limit, each with its own sequence.
    for (const batch of batches(delta.upserts, (e) => e.path.length + (e.type === 'symlink' ? e.target.length : 0) + 160)) {
      this.seq += batch.length;
      this.record({ t: 'change', seq: this.seq, upserts: batch, removed: [] });
    }
    for (const batch of batches(delta.removed, (p) => p.length + 8)) {
      this.seq += batch.length;
      this.record({ t: 'change', seq: this.seq, upserts: [], removed: batch });
    }
    this.publishGauges();
    return { upserts: delta.upserts.length, removed: delta.removed.length, sample: delta.upserts.slice(0, 5).map((e) => e.path) };
  }

  /** Streams a change to every follower and keeps it in the bounded log for those that reconnect. */
  private record(change: Extract<ServerMessage, { t: 'change' }>): void {
    this.broadcast(change);
    this.changeLog.push(change);
    this.logEntries += change.upserts.length + change.removed.length;
    while (this.logEntries > CHANGE_LOG_ENTRIES) {
      const dropped = this.changeLog.shift() as Extract<ServerMessage, { t: 'change' }>;
      this.logEntries -= dropped.upserts.length + dropped.removed.length;
      this.logFloor = dropped.seq;
    }
  }

  private publishGauges(): void {
    this.opts.metrics.filesEntries.set(this.manifest.size);
    this.opts.metrics.filesSequence.set(this.seq);
  }

  private broadcast(message: ServerMessage): void {
    if (!this.serving()) return;
    const frame = encodeMessage(message);
    for (const s of this.sessions) {
      if (s.live) s.socket.write(frame);
      // A follower still receiving the manifest gets the changes after it (heartbeats it can miss).
      else if (s.backlog && message.t === 'change') s.backlog.push(frame);
    }
  }

  private accept(socket: tls.TLSSocket): void {
    const session = new Session(socket, this);
    this.sessions.add(session);
    socket.once('close', () => this.sessions.delete(session));
  }

  // --- what a session asks of the server -------------------------------------------------------------------

  refusal(term: number, version: number): { code: string; message: string } | null {
    if (!this.serving()) return { code: 'not_leader', message: `${this.opts.node} no longer leads` };
    if (version !== PROTOCOL_VERSION) return { code: 'bad_version', message: `protocol ${version} is not ${PROTOCOL_VERSION}` };
    // Design rule 6: a follower that has seen a newer term knows of a newer leader; this one must not serve it.
    if (term > this.opts.term) return { code: 'stale_term', message: `the follower has seen term ${term}; this leader's term is ${this.opts.term}` };
    return null;
  }

  /**
   * The welcome, then the changes since the follower's position when the log still has them all (same
   * epoch, position at or after the log's floor), else the whole manifest. Changes are at most the log
   * (CHANGE_LOG_ENTRIES) and go in one synchronous step. The manifest streams with backpressure, in batches,
   * as it was at the welcome's sequence: the list of its entries is taken in the same synchronous step as the
   * welcome (entries are replaced, never changed in place), and the changes numbered meanwhile wait in the
   * session's backlog and follow the last batch, in order; the session is live (gets broadcasts directly)
   * only after that. So the follower sees exactly the manifest at that sequence and then every change after
   * it, as before; only the frames of 100,000 entries (16 MB) are no longer all in the socket's buffer at once.
   */
  async greet(session: Session, position: { epoch: string; lastSeq: number }): Promise<void> {
    let bytes = 0;
    const w = (m: ServerMessage) => {
      const frame = encodeMessage(m);
      bytes += frame.length;
      return session.socket.write(frame);
    };
    const incremental = position.epoch === this.epoch && position.lastSeq >= this.logFloor && position.lastSeq <= this.seq;
    if (incremental) {
      w({ t: 'welcome', node: this.opts.node, term: this.opts.term, epoch: this.epoch, seq: this.seq, since: position.lastSeq, digest: manifestDigest(this.manifest) });
      const changes = this.changeLog.filter((c) => c.seq > position.lastSeq);
      for (const c of changes) w(c);
      this.opts.log.info('files: sent a follower the changes since its position', { peer: session.peer, since: position.lastSeq, seq: this.seq, changes: changes.length, bytes });
      session.live = true;
      return;
    }
    const seq = this.seq;
    const entries = [...this.manifest.values()];
    session.backlog = [];
    w({ t: 'welcome', node: this.opts.node, term: this.opts.term, epoch: this.epoch, seq });
    const all = batches(entries, (e) => e.path.length + (e.type === 'symlink' ? e.target.length : 0) + 160);
    if (all.length === 0) all.push([]);
    for (let i = 0; i < all.length; i++) {
      if (!w({ t: 'snapshot', seq, entries: all[i], last: i === all.length - 1 })) await drained(session.socket);
      // Demoted, or the follower went, while the socket drained: nothing more leaves (see stop()).
      if (!this.serving() || session.socket.destroyed) return;
    }
    for (const frame of session.backlog) session.socket.write(frame);
    session.backlog = null;
    session.live = true;
    this.opts.log.info('files: sent a follower the manifest', { peer: session.peer, entries: entries.length, seq, bytes });
  }

  /**
   * Streams one file with backpressure. The follower checks the bytes against the manifest's hash; the
   * leader only says whether the file changed while it was read (size or mtime moved), which saves hashing
   * every file twice on the leader.
   */
  async sendFile(session: Session, path: string): Promise<void> {
    const { socket } = session;
    const entry = this.manifest.get(path);
    if (unsafePathReason(path) !== null || entry?.type !== 'file') {
      socket.write(encodeMessage({ t: 'missing', path }));
      return;
    }
    const handle = await open(join(this.opts.root, path), constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null);
    const before = await handle?.stat().catch(() => null);
    if (!handle || !before?.isFile()) {
      await handle?.close();
      if (this.serving()) socket.write(encodeMessage({ t: 'missing', path }));
      this.markDirty(path);
      return;
    }
    const same = (st: typeof before) => st.size === entry.size && Math.round(st.mtimeMs) === entry.mtimeMs;
    let size = 0;
    try {
      if (!this.serving()) return;
      socket.write(encodeMessage({ t: 'file', path, size: before.size }));
      if (!same(before)) {
        // Changed since the manifest: sending it would be wasted; its change reaches the follower soon.
        socket.write(encodeMessage({ t: 'end', path, size: 0, changed: true }));
        this.markDirty(path);
        return;
      }
      for await (const chunk of handle.createReadStream({ highWaterMark: CHUNK_BYTES, autoClose: false })) {
        if (!this.serving() || socket.destroyed) return;
        const buf = chunk as Buffer;
        size += buf.length;
        let ok = true;
        for (const part of encodeData(buf)) ok = socket.write(part);
        if (!ok) await drained(socket);
      }
      const changed = !same(await handle.stat()) || size !== entry.size;
      if (!this.serving()) return;
      socket.write(encodeMessage({ t: 'end', path, size, changed }));
      this.opts.metrics.filesBytes.inc({ direction: 'sent' }, size);
      this.opts.metrics.filesTransferred.inc({ direction: 'sent' });
      // The file changed since the manifest was made: re-read it, so the follower hears of the new content.
      if (changed) this.markDirty(path);
    } finally {
      await handle.close();
    }
  }

  get log(): Logger {
    return this.opts.log;
  }

  get metrics(): Metrics {
    return this.opts.metrics;
  }
}

/** One follower's connection: hello, then the manifest and changes, and the files it asks for, in order. */
class Session {
  live = false;
  /** Changes numbered while the manifest streams to this follower (greet), sent after its last batch. */
  backlog: Buffer[] | null = null;
  private greeted = false;
  /** The follower's node name (from its hello) and the highest sequence it says it has installed and fsynced. */
  node = '';
  installedSeq = 0;
  private readonly decoder = new FrameDecoder();
  private readonly gets: string[] = [];
  private sending = false;
  private readonly helloTimer: NodeJS.Timeout;
  peer: string;

  constructor(
    readonly socket: tls.TLSSocket,
    private readonly server: MirrorServer,
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.helloTimer = setTimeout(() => this.fail('hello_timeout', 'no hello within the time limit'), HELLO_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => {
      try {
        this.decoder.end();
      } catch (e) {
        this.fail((e as FrameError).code, errorMessage(e));
      }
    });
    socket.on('error', (e) => server.log.debug('files: follower connection error', { peer: this.peer, error: errorMessage(e) }));
    socket.on('close', () => clearTimeout(this.helloTimer));
  }

  close(): void {
    this.live = false;
    this.socket.destroy();
  }

  private fail(code: string, why: string): void {
    this.server.metrics.filesErrors.inc({ reason: code });
    this.server.log.warn(`files: closing a follower connection: ${why}`, { code, peer: this.peer });
    this.close();
  }

  private receive(chunk: Buffer): void {
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (frame.kind === KIND_DATA) throw new FrameError('frame_bad_kind', 'followers send no data frames');
        const message = parseMessage(clientMessage, frame.message);
        if (message.t === 'hello') {
          if (this.greeted) throw new FrameError('frame_bad_message', 'second hello');
          this.greeted = true;
          clearTimeout(this.helloTimer);
          this.peer = `${message.node}@${this.peer}`;
          this.node = message.node;
          const refusal = this.server.refusal(message.term, message.v);
          if (refusal) {
            this.server.metrics.filesErrors.inc({ reason: refusal.code });
            this.server.log.warn(`files: refusing follower: ${refusal.message}`, { code: refusal.code, peer: this.peer });
            this.socket.end(encodeMessage({ t: 'refuse', ...refusal }));
            return;
          }
          this.server.log.info('files: follower connected', { peer: this.peer, term: message.term, lastSeq: message.lastSeq, epoch: message.epoch });
          this.server.greet(this, message).catch((e: unknown) => this.fail('send_failed', `sending the manifest failed: ${errorMessage(e)}`));
        } else if (!this.live) {
          // Before the welcome (or, from a follower that breaks the protocol, while the manifest streams).
          throw new FrameError('frame_bad_message', 'request before the manifest');
        } else if (message.t === 'installed') {
          if (message.seq > this.server.sequence) throw new FrameError('frame_bad_message', `installed ${message.seq}, beyond sequence ${this.server.sequence}`);
          this.installedSeq = Math.max(this.installedSeq, message.seq);
          this.server.installed(this);
        } else {
          this.gets.push(message.path);
          void this.pump();
        }
      }
    } catch (e) {
      this.fail(e instanceof FrameError ? e.code : 'frame_bad_message', errorMessage(e));
    }
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.gets.length > 0 && this.live && !this.socket.destroyed) await this.server.sendFile(this, this.gets.shift() as string);
    } catch (e) {
      this.fail('send_failed', `sending a file failed: ${errorMessage(e)}`);
    } finally {
      this.sending = false;
    }
  }
}

