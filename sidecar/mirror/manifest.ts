import { createHash } from 'node:crypto';
import { z } from 'zod';
import { unsafeLinkReason, unsafePathReason } from './paths.js';

/**
 * One entry of a mirrored directory. `mtimeMs` is rounded to whole milliseconds (what utimes sets back, up to float rounding);
 * directories carry no mtime, since writing into a directory changes it on every node anyway.
 */
export const entrySchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('file'),
    path: z.string(),
    size: z.number().int().nonnegative(),
    mode: z.number().int().min(0).max(0o7777),
    mtimeMs: z.number().int(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  }).strict(),
  z.object({ type: z.literal('dir'), path: z.string(), mode: z.number().int().min(0).max(0o7777) }).strict(),
  z.object({ type: z.literal('symlink'), path: z.string(), target: z.string() }).strict(),
]);
export type Entry = z.infer<typeof entrySchema>;

/**
 * What this node's file was when a file entry was read from it (Scanner): its inode and ctime, which every
 * write, chmod, utimes and rename moves. Symbol keys, so no part of the entry's value: JSON (the wire) skips
 * them, and sameEntry, planChanges and manifestDigest read named fields only. They live on the entry so that
 * the manifest a node keeps is also its scanner's hash cache, without a second map and object per file.
 */
export const LOCAL_CTIME = Symbol('localCtimeMs');
export const LOCAL_INO = Symbol('localIno');
export type FileEntry = Extract<Entry, { type: 'file' }> & { [LOCAL_CTIME]?: number; [LOCAL_INO]?: number };
export type Manifest = Map<string, Entry>;

/**
 * A file entry as one object literal of a fixed shape, its local stamp included (unset), so that setting the
 * stamp later changes no shape. A schema-parsed message builds its objects property by property, which puts
 * the properties in a separate backing store (about 26 bytes more an entry, 2.6 MB at 100,000).
 */
export function fileEntry(e: Omit<FileEntry, 'type'>, ctimeMs?: number, ino?: number): FileEntry {
  return { type: 'file', path: e.path, size: e.size, mode: e.mode, mtimeMs: e.mtimeMs, sha256: e.sha256, [LOCAL_CTIME]: ctimeMs, [LOCAL_INO]: ino };
}

/** A peer's entry as the follower keeps it (fileEntry for files). */
export function compactEntry(e: Entry): Entry {
  if (e.type === 'file') return fileEntry(e);
  if (e.type === 'dir') return { type: 'dir', path: e.path, mode: e.mode };
  return { type: 'symlink', path: e.path, target: e.target };
}

/** Why an entry from a peer must not be applied (it would write outside the directory), or null. */
export function unsafeEntryReason(entry: Entry): string | null {
  const reason = unsafePathReason(entry.path);
  if (reason) return reason;
  return entry.type === 'symlink' ? unsafeLinkReason(entry.path, entry.target) : null;
}

export function sameEntry(a: Entry | undefined, b: Entry | undefined): boolean {
  if (!a || !b || a.type !== b.type || a.path !== b.path) return false;
  if (a.type === 'file' && b.type === 'file') return a.sha256 === b.sha256 && a.size === b.size && a.mode === b.mode && a.mtimeMs === b.mtimeMs;
  if (a.type === 'dir' && b.type === 'dir') return a.mode === b.mode;
  if (a.type === 'symlink' && b.type === 'symlink') return a.target === b.target;
  return false;
}

/** What a follower must do to turn `local` into `target`, in the order it must be done. */
export interface Plan {
  /** Directories to create or re-mode, parents first. */
  dirs: Extract<Entry, { type: 'dir' }>[];
  /** Files whose content differs: fetched from the leader. */
  fetch: FileEntry[];
  /** Files with the right content but another mode or mtime: fixed in place. */
  touch: FileEntry[];
  symlinks: Extract<Entry, { type: 'symlink' }>[];
  /** Paths the leader does not have, children before their parents; applied after everything else. */
  remove: string[];
}

export function planChanges(target: Manifest, local: Manifest): Plan {
  const plan: Plan = { dirs: [], fetch: [], touch: [], symlinks: [], remove: [] };
  for (const entry of target.values()) {
    const mine = local.get(entry.path);
    if (sameEntry(entry, mine)) continue;
    if (entry.type === 'dir') plan.dirs.push(entry);
    else if (entry.type === 'symlink') plan.symlinks.push(entry);
    else if (mine?.type === 'file' && mine.sha256 === entry.sha256 && mine.size === entry.size) plan.touch.push(entry);
    else plan.fetch.push(entry);
  }
  for (const path of local.keys()) if (!target.has(path)) plan.remove.push(path);
  const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  plan.dirs.sort(byPath);
  plan.fetch.sort(byPath);
  // Reverse order puts every path before its parent directory ("a/b" sorts after "a").
  plan.remove.sort().reverse();
  return plan;
}

/**
 * Changes between two manifests of the same directory, as the leader streams them: upserts, then removals;
 * and `reread`, the entries of `after` equal in value to those of `before` but other objects (read again with
 * a new local stamp), which are no change but which the leader keeps (server.ts apply).
 */
export function manifestDelta(before: Manifest, after: Manifest): { upserts: Entry[]; removed: string[]; reread: Entry[] } {
  // Plain loops, no copies of the manifests: a rescan of 100,000 entries runs this on the event loop.
  const upserts: Entry[] = [];
  const reread: Entry[] = [];
  for (const e of after.values()) {
    const was = before.get(e.path);
    if (e === was) continue;
    if (sameEntry(e, was)) reread.push(e);
    else upserts.push(e);
  }
  const removed: string[] = [];
  for (const p of before.keys()) if (!after.has(p)) removed.push(p);
  return { upserts, removed: removed.sort().reverse(), reread };
}

/**
 * One hash of a whole manifest, independent of insertion order: a follower that rebuilt the leader's manifest
 * from its own copy and the changes since its position compares it with the leader's before relying on it.
 */
export function manifestDigest(manifest: Manifest): string {
  const hash = createHash('sha256');
  for (const path of [...manifest.keys()].sort()) {
    const e = manifest.get(path) as Entry;
    const fields = e.type === 'file' ? [e.size, e.mode, e.mtimeMs, e.sha256] : e.type === 'dir' ? [e.mode] : [e.target];
    hash.update(`${e.type}\0${e.path}\0${fields.join('\0')}\n`);
  }
  return hash.digest('hex');
}
