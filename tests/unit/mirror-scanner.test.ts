import { chmodSync, lstatSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../sidecar/log.js';
import { Scanner, rescanPauseMs } from '../../sidecar/mirror/scanner.js';
import { fileEntry, type FileEntry, type Manifest } from '../../sidecar/mirror/manifest.js';

test('periodic rescans pause files.rescanSeconds up to 10,000 entries, then longer in proportion', () => {
  expect(rescanPauseMs(30_000, 0)).toBe(30_000);
  expect(rescanPauseMs(30_000, 10_000)).toBe(30_000);
  expect(rescanPauseMs(30_000, 100_000)).toBe(300_000);
  expect(rescanPauseMs(2_000, 1_000)).toBe(3_000);
});

describe('scanner: one entry object per unchanged file', () => {
  let root: string;
  const log = createLogger({ node: 'n1', role: 'test', term: 0 }, 'error');
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'ha-scan-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test('a rescan returns the entry of the kept manifest for an unchanged file, and a new one for a changed file', async () => {
    writeFileSync(join(root, 'same'), 'a');
    writeFileSync(join(root, 'edited'), 'b');
    writeFileSync(join(root, 'moded'), 'c');
    let kept: Manifest = new Map();
    const scanner = new Scanner(root, log, (p) => kept.get(p));
    const first = await scanner.scan();
    kept = first;
    writeFileSync(join(root, 'edited'), 'bb');
    chmodSync(join(root, 'moded'), 0o600);
    const second = await scanner.scan();
    expect(second.get('same')).toBe(first.get('same'));
    expect(second.get('edited')).not.toBe(first.get('edited'));
    expect(second.get('edited')).toMatchObject({ size: 2 });
    expect(second.get('moded')).toMatchObject({ mode: 0o600, sha256: (first.get('moded') as FileEntry).sha256 });
    // The stamp is no part of the entry's value, nor of the wire.
    const { type, path, size, mode, mtimeMs, sha256 } = first.get('same') as FileEntry;
    expect(JSON.parse(JSON.stringify(second.get('same')))).toEqual({ type, path, size, mode, mtimeMs, sha256 });
  });

  test('an installed entry the follower remembers is what the next scan returns, unless the file differs from it', async () => {
    writeFileSync(join(root, 'f'), 'x');
    utimesSync(join(root, 'f'), 2, 2);
    const local: Manifest = new Map();
    const scanner = new Scanner(root, log, (p) => local.get(p));
    const scanned = (await scanner.scan()).get('f') as FileEntry;
    const installed = fileEntry(scanned);
    local.set('f', installed);
    scanner.remember(installed, lstatSync(join(root, 'f')));
    expect((await scanner.scan()).get('f')).toBe(installed);
    const wrong = fileEntry({ ...scanned, mode: 0o600 });
    local.set('f', wrong);
    scanner.remember(wrong, lstatSync(join(root, 'f')));
    const again = (await scanner.scan()).get('f');
    expect(again).not.toBe(wrong);
    expect(again).toMatchObject({ mode: scanned.mode, sha256: scanned.sha256 });
  });
});
