import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Entry, FileEntry } from './manifest.js';
import { unsafeEntryReason } from './manifest.js';
import { TEMP_PATTERN, parentsOf, tempName } from './paths.js';

/**
 * The follower's writes into its copy of the directory. Every path is checked before use, and every parent
 * is made a real directory (a local symlink or file in the way is removed first), so nothing is ever written
 * outside the root, whatever a peer or a local user put there.
 */
export class Applier {
  /**
   * Directories (root-relative, '' for the root) whose entries changed since the last `syncDirectories`: a
   * rename, a new entry or a removal is durable only once its directory is fsynced.
   */
  private readonly unsyncedDirs = new Set<string>();

  constructor(readonly root: string) {}

  private full(path: string): string {
    return join(this.root, path);
  }

  private assertSafe(entry: Entry | { path: string; type: 'file' }): void {
    const reason = unsafeEntryReason(entry as Entry);
    if (reason) throw new Error(`refusing ${entry.path}: ${reason}`);
  }

  /** Makes every parent of `path` a real directory inside the root. */
  async ensureParents(path: string): Promise<void> {
    for (const parent of parentsOf(path)) await this.ensureDirAt(parent, null);
  }

  private async ensureDirAt(path: string, mode: number | null): Promise<void> {
    const full = this.full(path);
    const st = await lstat(full).catch(() => null);
    if (st && !st.isDirectory()) await rm(full, { force: true, recursive: true });
    if (!st || !st.isDirectory()) {
      await mkdir(full, { mode: mode ?? 0o755 });
      this.unsyncedDirs.add(posix.dirname(path) === '.' ? '' : posix.dirname(path));
    }
    if (mode !== null && (!st?.isDirectory() || (st.mode & 0o7777) !== mode)) await chmod(full, mode);
  }

  async dir(entry: Extract<Entry, { type: 'dir' }>): Promise<void> {
    this.assertSafe(entry);
    await this.ensureParents(entry.path);
    await this.ensureDirAt(entry.path, entry.mode);
  }

  async symlink(entry: Extract<Entry, { type: 'symlink' }>): Promise<void> {
    this.assertSafe(entry);
    await this.ensureParents(entry.path);
    const temp = join(dirname(this.full(entry.path)), tempName(randomBytes(6).toString('hex')));
    await symlink(entry.target, temp);
    await this.replace(temp, entry.path);
  }

  /** Right content already: only mode and mtime. */
  async touch(entry: FileEntry): Promise<void> {
    this.assertSafe(entry);
    const full = this.full(entry.path);
    await chmod(full, entry.mode);
    await utimes(full, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
  }

  /** A temporary file beside `path`, in the same directory, so the final rename is atomic. */
  async openTemp(path: string): Promise<{ temp: string; stream: WriteStream }> {
    this.assertSafe({ path, type: 'file' });
    await this.ensureParents(path);
    const temp = join(dirname(this.full(path)), tempName(randomBytes(6).toString('hex')));
    const stream = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    return { temp, stream };
  }

  /**
   * Mode and mtime, then an fsync of the content, then the rename: a reader sees the old file or the whole
   * new one, never half, and after a power loss the final name holds either the old content or the whole new
   * one, never an empty or partial file (without the fsync, a file system may commit the rename before the
   * data). The rename itself is durable after `syncDirectories`.
   */
  async install(temp: string, entry: FileEntry): Promise<void> {
    await chmod(temp, entry.mode);
    await utimes(temp, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    await fsyncPath(temp);
    await this.replace(temp, entry.path);
  }

  private async replace(temp: string, path: string): Promise<void> {
    const full = this.full(path);
    const st = await lstat(full).catch(() => null);
    if (st?.isDirectory()) await rm(full, { recursive: true, force: true });
    await rename(temp, full);
    this.changedIn(path);
  }

  private changedIn(path: string): void {
    const dir = posix.dirname(path);
    this.unsyncedDirs.add(dir === '.' ? '' : dir);
  }

  /**
   * Fsyncs every directory whose entries changed, so every rename, creation and removal so far survives a
   * power loss. The follower calls it before it records or reports a sequence as installed: a sequence it
   * reports is on its disk, not only in its page cache. A directory that is gone was removed with its parent,
   * whose own fsync covers it.
   */
  async syncDirectories(): Promise<void> {
    const dirs = [...this.unsyncedDirs];
    this.unsyncedDirs.clear();
    for (const dir of dirs) await fsyncPath(this.full(dir)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  }

  async discard(temp: string): Promise<void> {
    await unlink(temp).catch(() => undefined);
  }

  async remove(path: string): Promise<void> {
    this.assertSafe({ path, type: 'file' });
    await rm(this.full(path), { recursive: true, force: true });
    this.changedIn(path);
  }

  /** Temporary files a crash left behind. */
  async removeLeftovers(dir = ''): Promise<void> {
    const entries = await readdir(this.full(dir), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (TEMP_PATTERN.test(e.name)) await rm(this.full(path), { force: true, recursive: true });
      else if (e.isDirectory()) await this.removeLeftovers(path);
    }
  }
}

/** fsync(2) of a file or directory, through a read-only descriptor (fsync flushes the inode, whoever wrote it). */
async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
