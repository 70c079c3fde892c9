import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * One line per entry of a directory tree, sorted: type, mode, path, and for files size, mtime (ms) and
 * sha256, for symlinks the target. Two trees are identical for the mirror when their listings are equal.
 * Directory mtimes are left out: writing into a directory changes its own.
 */
export async function treeListing(root: string, ignore: (path: string) => boolean = () => false): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    // A tree that changes while it is read may lose entries under the walk: they are left out.
    const names = await readdir(join(root, dir)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' && dir ? [] : Promise.reject(e)));
    for (const name of names) {
      const path = dir ? `${dir}/${name}` : name;
      if (ignore(path)) continue;
      const full = join(root, path);
      const st = await lstat(full).catch(() => null);
      if (!st) continue;
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        lines.push(`d ${mode} ${path}`);
        await walk(path);
      } else if (st.isSymbolicLink()) {
        lines.push(`l ${path} -> ${await readlink(full)}`);
      } else {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(full, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
        lines.push(`f ${mode} ${path} ${st.size} ${Math.round(st.mtimeMs)} ${hash.digest('hex')}`);
      }
    }
  };
  await walk('');
  return lines.sort();
}

/** A digest of `treeListing`, for cheap comparisons of many trees. */
export async function treeDigest(root: string, ignore?: (path: string) => boolean): Promise<string> {
  return createHash('sha256').update((await treeListing(root, ignore)).join('\n')).digest('hex');
}
