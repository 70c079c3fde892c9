import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, opendir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { LOCAL_CTIME, LOCAL_INO, fileEntry, type Entry, type FileEntry, type Manifest } from './manifest.js';
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

export async function sha256File(path: string, size: number): Promise<string> {
  if (size <= SMALL_FILE_BYTES) return createHash('sha256').update(await readFile(path)).digest('hex');
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: SMALL_FILE_BYTES })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Whether `e` was read from the file `st` describes, unchanged since (same inode, ctime, size, mtime, mode). */
function stampedAs(e: FileEntry, st: Stats): boolean {
  return e[LOCAL_INO] === st.ino && e[LOCAL_CTIME] === st.ctimeMs && e.size === st.size && e.mtimeMs === Math.round(st.mtimeMs) && e.mode === (st.mode & 0o7777);
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
 * Reads a directory into a manifest. The manifest the caller keeps is the hash cache: a file whose size,
 * mtime, mode, inode and ctime are those of its entry there (the stamp, LOCAL_CTIME and LOCAL_INO) is not
 * read again, and its entry is returned as it is, not copied; so a rescan costs one lstat per entry unless
 * something changed, and at 100,000 files the node holds one entry object per file, not one in its manifest,
 * one in a cache and one more in each rescan's result. Symlinks that lead outside the directory, and
 * sockets, FIFOs and devices, are left out and logged once.
 */
export class Scanner {
  private readonly refused = new Set<string>();

  constructor(
    readonly root: string,
    private readonly log: Logger,
    /** The entry of a path in the manifest the caller keeps (what it last read or installed there). */
    private readonly known: (path: string) => Entry | undefined,
    /** Called with each directory before it is listed (the leader watches it from then on). */
    private readonly listing: (dir: string) => void = () => undefined,
  ) {}

  async scan(): Promise<Manifest> {
    await checkRoot(this.root);
    const manifest: Manifest = new Map();
    await this.walk('', manifest);
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
    const known = this.known(path);
    if (known?.type === 'file' && stampedAs(known, st)) return known;
    let sha256: string;
    try {
      sha256 = await sha256File(full, st.size);
    } catch {
      return null; // removed or replaced while hashed: its own event follows
    }
    if (stable) {
      const now = await lstat(full).catch(() => null);
      if (!now || now.size !== st.size || now.mtimeMs !== st.mtimeMs) return 'unstable';
    }
    // utimes sets back whole milliseconds only up to float rounding
    return fileEntry({ path, size: st.size, mode: st.mode & 0o7777, mtimeMs: Math.round(st.mtimeMs), sha256 }, st.ctimeMs, st.ino);
  }

  /**
   * Stamps an entry the follower just installed with its file's lstat (after the rename), so the next rescan
   * neither hashes it again nor copies it; the follower keeps that entry in its manifest.
   */
  remember(entry: FileEntry, st: Stats): void {
    if (st.size !== entry.size || Math.round(st.mtimeMs) !== entry.mtimeMs || (st.mode & 0o7777) !== entry.mode) return;
    entry[LOCAL_CTIME] = st.ctimeMs;
    entry[LOCAL_INO] = st.ino;
  }

  private refuseOnce(path: string, message: string, extra: Record<string, unknown> = {}): void {
    if (this.refused.has(path)) return;
    this.refused.add(path);
    this.log.warn(`files: ${message}`, { code: 'files_path_refused', path, ...extra });
  }
}
