import { manifestDelta, manifestDigest, planChanges, sameEntry, unsafeEntryReason, type Entry, type Manifest } from '../../sidecar/mirror/manifest.js';

const sha = (c: string) => c.repeat(64);
const file = (path: string, content = 'a', mode = 0o644, mtimeMs = 1000, size = 1): Entry => ({ type: 'file', path, size, mode, mtimeMs, sha256: sha(content) });
const dir = (path: string, mode = 0o755): Entry => ({ type: 'dir', path, mode });
const link = (path: string, target: string): Entry => ({ type: 'symlink', path, target });
const manifest = (...entries: Entry[]): Manifest => new Map(entries.map((e) => [e.path, e]));

describe('mirror manifest: what a follower must do', () => {
  test('identical manifests need nothing', () => {
    const m = manifest(dir('d'), file('d/f'), link('l', 'd/f'));
    expect(planChanges(m, new Map(m))).toEqual({ dirs: [], fetch: [], touch: [], symlinks: [], remove: [] });
  });

  test('new or changed content is fetched; same content with another mode or mtime is fixed in place', () => {
    const target = manifest(file('new'), file('changed', 'b'), file('moded', 'a', 0o600), file('timed', 'a', 0o644, 2000));
    const local = manifest(file('changed', 'a'), file('moded'), file('timed'));
    const plan = planChanges(target, local);
    expect(plan.fetch.map((e) => e.path)).toEqual(['changed', 'new']);
    expect(plan.touch.map((e) => e.path).sort()).toEqual(['moded', 'timed']);
  });

  test('directories parents first, removals children first, and a type change is re-created', () => {
    const target = manifest(dir('a'), dir('a/b'), dir('a/b/c'), file('was-dir'), link('was-file', 'a'));
    const local = manifest(dir('was-dir'), file('was-file'), dir('gone'), dir('gone/sub'), file('gone/sub/f'));
    const plan = planChanges(target, local);
    expect(plan.dirs.map((e) => e.path)).toEqual(['a', 'a/b', 'a/b/c']);
    expect(plan.fetch.map((e) => e.path)).toEqual(['was-dir']);
    expect(plan.symlinks.map((e) => e.path)).toEqual(['was-file']);
    expect(plan.remove).toEqual(['gone/sub/f', 'gone/sub', 'gone']);
  });

  test('an empty target removes everything (the caller guards against a missing root)', () => {
    expect(planChanges(new Map(), manifest(file('x'))).remove).toEqual(['x']);
  });

  test('the delta between two manifests: upserts and removals, children first', () => {
    const before = manifest(dir('d'), file('d/f'), file('keep'), file('edit'));
    const after = manifest(file('keep'), file('edit', 'z'), file('added'));
    const delta = manifestDelta(before, after);
    expect(delta.upserts.map((e) => e.path).sort()).toEqual(['added', 'edit']);
    expect(delta.removed).toEqual(['d/f', 'd']);
    // 'keep' is another object of the same value; an entry that is the same object is neither.
    expect(delta.reread.map((e) => e.path)).toEqual(['keep']);
    expect(manifestDelta(after, after)).toEqual({ upserts: [], removed: [], reread: [] });
  });

  test('sameEntry compares what the mirror keeps', () => {
    expect(sameEntry(file('f'), file('f'))).toBe(true);
    expect(sameEntry(file('f'), file('f', 'a', 0o600))).toBe(false);
    expect(sameEntry(dir('d'), dir('d', 0o700))).toBe(false);
    expect(sameEntry(link('l', 'a'), link('l', 'b'))).toBe(false);
    expect(sameEntry(file('f'), undefined)).toBe(false);
  });

  test('entries that would write outside the directory are unsafe', () => {
    expect(unsafeEntryReason(file('../x'))).toBe('".." segment');
    expect(unsafeEntryReason(link('l', '../../etc'))).toBe('symlink points outside the directory');
    expect(unsafeEntryReason(link('a/l', '../b'))).toBeNull();
  });

  test('the manifest digest ignores insertion order and changes with any field of any entry', () => {
    const a = manifest(dir('d'), file('d/f'), link('l', 'd/f'));
    const b = manifest(link('l', 'd/f'), file('d/f'), dir('d'));
    expect(manifestDigest(a)).toBe(manifestDigest(b));
    for (const changed of [manifest(dir('d', 0o700), file('d/f'), link('l', 'd/f')), manifest(dir('d'), file('d/f', 'a', 0o644, 1001), link('l', 'd/f')), manifest(dir('d'), file('d/f'), link('l', 'd')), manifest(dir('d'), file('d/f'))]) {
      expect(manifestDigest(changed)).not.toBe(manifestDigest(a));
    }
  });
});
