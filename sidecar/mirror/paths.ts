import { posix } from 'node:path';

/** Temporary names the follower writes before a rename; never mirrored, cleaned up at start. */
export const TEMP_PATTERN = /^\.ha-mirror-[0-9a-f]+\.tmp$/;

export const tempName = (random: string): string => `.ha-mirror-${random}.tmp`;

/**
 * Why a manifest path is unsafe, or null when it is a normalised relative path inside the directory.
 * Paths are POSIX, relative to the mirrored root, without `.`/`..` segments, empty segments or NUL bytes.
 */
export function unsafePathReason(path: string): string | null {
  if (typeof path !== 'string' || path.length === 0) return 'empty path';
  if (path.length > 4096) return 'path longer than 4096 bytes';
  if (path.includes('\0')) return 'NUL byte in path';
  if (path.startsWith('/')) return 'absolute path';
  const segments = path.split('/');
  if (segments.some((s) => s === '..')) return '".." segment';
  if (segments.some((s) => s === '' || s === '.')) return 'not normalised';
  if (posix.normalize(path) !== path) return 'not normalised';
  return null;
}

/**
 * Why a symlink at `linkPath` pointing at `target` would lead outside the root, or null when it stays inside.
 * Only relative targets are allowed: an absolute target names a place on this node's file system, which is
 * not the same place on another node.
 */
export function unsafeLinkReason(linkPath: string, target: string): string | null {
  if (target.length === 0) return 'empty symlink target';
  if (target.includes('\0')) return 'NUL byte in symlink target';
  if (target.startsWith('/')) return 'absolute symlink target';
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (resolved === '..' || resolved.startsWith('../')) return 'symlink points outside the directory';
  return null;
}

/** Parent paths of a manifest path, outermost first: `a/b/c` -> `a`, `a/b`. */
export function parentsOf(path: string): string[] {
  const segments = path.split('/');
  return segments.slice(0, -1).map((_, i) => segments.slice(0, i + 1).join('/'));
}
