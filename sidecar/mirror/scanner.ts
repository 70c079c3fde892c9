import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, opendir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Entry, Manifest } from './manifest.js';
import { TEMP_PATTERN, unsafeLinkReason } from './paths.js';

/** Files up to this size are hashed from one read; larger ones stream, so memory stays flat. */
const SMALL_FILE_BYTES = 1024 * 1024;
/** Entries stat-ed at once within one directory. */
const STAT_BATCH = 64;
/**
 * A full rescan costs about 20-30 µs an entry (2-3 s at 100,000 entries, most of it CPU, on the 2-core CI
 * machine). Periodic rescans pause `files.rescanSeconds`, or this long per entry when that is longer, so they
 * take about 1 % of a core at most: every 30 s up to 10,000 entries, every 5 minutes at 100,000. What they
 * catch (an event the leader's watch lost, a local edit on a standby) waits that long.
 */
const RESCAN_PAUSE_MS_PER_ENTRY = 3;

/** The pause before the next periodic rescan of a tree of `entries`. */
export const rescanPauseMs = (rescanMs: number, entries: number): number => Math.max(rescanMs, entries * RESCAN_PAUSE_MS_PER_ENTRY);

interface Hashed {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
}

export async function sha256File(path: string, size: number): Promise<string> {
  if (size <= SMALL_FILE_BYTES) return createHash('sha256').update(await readFile(path)).digest('hex');
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: SMALL_FILE_BYTES })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The root must exist and be a directory: a missing root means "do nothing", never "everything was deleted". */
export async function checkRoot(root: string): Promise<Stats> {
  const st = await lstat(root).catch((e: NodeJS.ErrnoException) => {
    throw new SidecarError('files_root_missing', `the files directory ${root} is missing (${e.code ?? errorMessage(e)})`);
  });
  if (!st.isDirectory()) throw new SidecarError('files_root_missing', `the files directory ${root} is not a directory`);
  return st;
}

/**
 * Reads a directory into a manifest. Hashes are cached by (size, mtime, ctime, inode), so a rescan costs one
 * lstat per entry unless something changed. Symlinks that lead outside the directory, and sockets, FIFOs and
 * devices, are left out and logged once.
 */
export class Scanner {
  private readonly hashes = new Map<string, Hashed>();
  private readonly refused = new Set<string>();

  constructor(
    readonly root: string,
    private readonly log: Logger,
    /** Called with each directory before it is listed (the leader watches it from then on). */
    private readonly listing: (dir: string) => void = () => undefined,
  ) {}

  async scan(): Promise<Manifest> {
    await checkRoot(this.root);
    const manifest: Manifest = new Map();
    await this.walk('', manifest);
    for (const path of this.hashes.keys()) if (!manifest.has(path)) this.hashes.delete(path);
    return manifest;
  }

  /** Everything below one directory (not the directory itself), e.g. one that was just moved in. */
  async scanBelow(dir: string): Promise<Manifest> {
    const below: Manifest = new Map();
    await this.walk(dir, below);
    return below;
  }

  private async walk(dir: string, into: Manifest): Promise<void> {
    this.listing(dir);
    const names: string[] = [];
    const handle = await opendir(join(this.root, dir)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' && dir !== '') return null; // removed while we walked: the next event covers it
      throw e;
    });
    if (!handle) return;
    for await (const d of handle) if (!TEMP_PATTERN.test(d.name)) names.push(d.name);
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH).map((n) => (dir ? `${dir}/${n}` : n));
      const entries = await Promise.all(batch.map((p) => this.entry(p)));
      for (const e of entries) {
        if (!e || e === 'unstable') continue;
        into.set(e.path, e);
        if (e.type === 'dir') subdirs.push(e.path);
      }
    }
    for (const sub of subdirs) await this.walk(sub, into);
  }

  /**
   * The entry of one path now, or null when it is gone or not mirrored. With `stable`, a file whose size or
   * mtime moved while it was hashed gives 'unstable' (it is still being written: its next event counts).
   */
  async entry(path: string, stable = false): Promise<Entry | null | 'unstable'> {
    const full = join(this.root, path);
    let st: Stats;
    try {
      st = await lstat(full);
    } catch {
      return null;
    }
    if (st.isDirectory()) return { type: 'dir', path, mode: st.mode & 0o7777 };
    if (st.isSymbolicLink()) {
      const target = await readlink(full).catch(() => null);
      if (target === null) return null;
      const unsafe = unsafeLinkReason(path, target);
      if (unsafe) {
        this.refuseOnce(path, `refusing a symlink: ${unsafe}`, { target });
        return null;
      }
      return { type: 'symlink', path, target };
    }
    if (!st.isFile()) {
      this.refuseOnce(path, 'not mirrored: neither a file, a directory nor a symlink');
      return null;
    }
    const mtimeMs = Math.round(st.mtimeMs); // utimes sets back whole milliseconds only up to float rounding
    const cached = this.hashes.get(path);
    let sha256: string;
    if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs && cached.ctimeMs === st.ctimeMs && cached.ino === st.ino) {
      sha256 = cached.sha256;
    } else {
      try {
        sha256 = await sha256File(full, st.size);
      } catch {
        return null; // removed or replaced while hashed: its own event follows
      }
      if (stable) {
        const now = await lstat(full).catch(() => null);
        if (!now || now.size !== st.size || now.mtimeMs !== st.mtimeMs) return 'unstable';
      }
      this.hashes.set(path, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256 });
    }
    return { type: 'file', path, size: st.size, mode: st.mode & 0o7777, mtimeMs, sha256 };
  }

  /** Tells the cache what the follower just wrote, so the next rescan does not hash it again. */
  remember(path: string, st: Stats, sha256: string): void {
    this.hashes.set(path, { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256 });
  }

  forget(path: string): void {
    this.hashes.delete(path);
  }

  private refuseOnce(path: string, message: string, extra: Record<string, unknown> = {}): void {
    if (this.refused.has(path)) return;
    this.refused.add(path);
    this.log.warn(`files: ${message}`, { code: 'files_path_refused', path, ...extra });
  }
}
