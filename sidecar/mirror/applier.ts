import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Entry, FileEntry } from './manifest.js';
import { unsafeEntryReason } from './manifest.js';
import { TEMP_PATTERN, parentsOf, tempName } from './paths.js';

/**
 * The follower's writes into its copy of the directory. Every path is checked before use, and every parent
 * is made a real directory (a local symlink or file in the way is removed first), so nothing is ever written
 * outside the root, whatever a peer or a local user put there.
 */
export class Applier {
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
    if (!st || !st.isDirectory()) await mkdir(full, { mode: mode ?? 0o755 });
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

  /** Mode and mtime first, then the rename: a reader sees the old file or the whole new one, never half. */
  async install(temp: string, entry: FileEntry): Promise<void> {
    await chmod(temp, entry.mode);
    await utimes(temp, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    await this.replace(temp, entry.path);
  }

  private async replace(temp: string, path: string): Promise<void> {
    const full = this.full(path);
    const st = await lstat(full).catch(() => null);
    if (st?.isDirectory()) await rm(full, { recursive: true, force: true });
    await rename(temp, full);
  }

  async discard(temp: string): Promise<void> {
    await unlink(temp).catch(() => undefined);
  }

  async remove(path: string): Promise<void> {
    this.assertSafe({ path, type: 'file' });
    await rm(this.full(path), { recursive: true, force: true });
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
