import { parentsOf, unsafeLinkReason, unsafePathReason } from '../../sidecar/mirror/paths.js';

describe('mirror paths: confined to the directory', () => {
  test.each(['a', 'a/b/c.txt', '.hidden', 'dir/..name', 'x y/z'])('%s is accepted', (p) => {
    expect(unsafePathReason(p)).toBeNull();
  });
  test.each([
    ['', 'empty path'],
    ['/etc/passwd', 'absolute path'],
    ['..', '".." segment'],
    ['a/../../b', '".." segment'],
    ['../a', '".." segment'],
    ['a//b', 'not normalised'],
    ['a/./b', 'not normalised'],
    ['a/', 'not normalised'],
    ['.', 'not normalised'],
    ['a\0b', 'NUL byte in path'],
  ])('%j is refused: %s', (p, reason) => {
    expect(unsafePathReason(p)).toBe(reason);
  });
  test('symlinks must stay inside', () => {
    expect(unsafeLinkReason('a/link', 'b')).toBeNull();
    expect(unsafeLinkReason('a/link', '../b')).toBeNull();
    expect(unsafeLinkReason('a/link', '../../b')).toBe('symlink points outside the directory');
    expect(unsafeLinkReason('link', '..')).toBe('symlink points outside the directory');
    expect(unsafeLinkReason('link', '/etc/passwd')).toBe('absolute symlink target');
    expect(unsafeLinkReason('a/b/link', '../x/../../../y')).toBe('symlink points outside the directory');
  });
  test('parents come outermost first', () => {
    expect(parentsOf('a/b/c')).toEqual(['a', 'a/b']);
    expect(parentsOf('top')).toEqual([]);
  });
});
