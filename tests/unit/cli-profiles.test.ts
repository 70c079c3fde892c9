import { afterAll, beforeEach, describe, expect, it } from '@jest/globals';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SidecarError } from '../../sidecar/errors.js';
import { exitCodeFor } from '../../cli/output.js';
import type { ProfilesFile } from '../../cli/profiles.js';
import { rejection } from '../harness/assertions.js';
import {
  configDir,
  currentProfile,
  defaultProfileName,
  deleteProfile,
  listProfiles,
  loadProfiles,
  managerUrlFor,
  normalizeManagerUrl,
  profilesPath,
  rememberLeader,
  resolveProfile,
  saveProfiles,
  showProfile,
  updateProfile,
  useProfile,
} from '../../cli/profiles.js';

const root = await mkdtemp(join(tmpdir(), 'hactl-profiles-'));
let dir: string;
let n = 0;

beforeEach(() => {
  n += 1;
  dir = join(root, `case-${n}`, 'hactl');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const mode = async (path: string) => (await stat(path)).mode & 0o777;

const sample: ProfilesFile = {
  current: 'prod',
  profiles: {
    prod: { managers: ['http://10.0.0.1:8008', 'http://10.0.0.2:8008'], token: 't0k', lastLeader: 'http://10.0.0.2:8008' },
    lab: { managers: ['http://127.0.0.11:8008'] },
  },
};

describe('configDir', () => {
  it('honours HACTL_CONFIG_DIR and defaults to ~/.config/hactl', () => {
    expect(configDir({ HACTL_CONFIG_DIR: '/x/y' })).toBe('/x/y');
    expect(configDir({ HACTL_CONFIG_DIR: '' })).toBe(join(homedir(), '.config', 'hactl'));
    expect(configDir({})).toBe(join(homedir(), '.config', 'hactl'));
  });
});

describe('saveProfiles / loadProfiles', () => {
  it('a missing file reads as no profiles', async () => {
    expect(await loadProfiles(dir)).toEqual({ current: null, profiles: {} });
  });

  it('writes the file 0600 in a directory it creates 0700, and reads back what it wrote', async () => {
    await saveProfiles(dir, sample);
    expect(await mode(dir)).toBe(0o700);
    expect(await mode(profilesPath(dir))).toBe(0o600);
    expect(await loadProfiles(dir)).toEqual(sample);
  });

  it('leaves no temporary file behind', async () => {
    await saveProfiles(dir, sample);
    await saveProfiles(dir, { ...sample, current: 'lab' });
    expect(await readdir(dir)).toEqual(['profiles.json']);
  });

  it('replaces a file someone made world-readable with a 0600 one', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(profilesPath(dir), JSON.stringify(sample), { mode: 0o644 });
    await chmod(profilesPath(dir), 0o644);
    await saveProfiles(dir, await loadProfiles(dir));
    expect(await mode(profilesPath(dir))).toBe(0o600);
  });

  it('keeps 0600 under a permissive umask', async () => {
    const old = process.umask(0o000);
    try {
      await saveProfiles(dir, sample);
    } finally {
      process.umask(old);
    }
    expect(await mode(profilesPath(dir))).toBe(0o600);
  });

  it('a file that is not JSON is one bad_profile_file error naming the file', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(profilesPath(dir), '{"current": "prod", "profiles": {', { mode: 0o600 });
    const error = await rejection(loadProfiles(dir));
    expect(error.code).toBe('bad_profile_file');
    expect(error.message).toContain(`${profilesPath(dir)} is not valid JSON`);
    expect(error.message).not.toContain('\n');
    expect(exitCodeFor(error.code)).toBe(1);
  });

  it.each([
    [{ current: 'a', profiles: { a: { managers: 'http://h:8008' } } }, 'profiles.a.managers'],
    [{ current: 'a', profiles: { a: { managers: ['not a url'] } } }, 'profiles.a.managers.0: not an http(s) URL'],
    [{ profiles: {} }, 'current'],
    [[1, 2], 'top level'],
    [{ current: null, profiles: { a: { managers: [], lastLeader: 7 } } }, 'profiles.a.lastLeader'],
  ])('a wrongly shaped file is bad_profile_file saying where (%#)', async (content, where) => {
    await mkdir(dir, { recursive: true });
    await writeFile(profilesPath(dir), JSON.stringify(content), { mode: 0o600 });
    const error = await rejection(loadProfiles(dir));
    expect(error.code).toBe('bad_profile_file');
    expect(error.message).toContain(`${profilesPath(dir)} is not a valid profiles file: ${where}`);
  });

  it('an unreadable file is bad_profile_file too', async () => {
    await mkdir(join(dir, 'profiles.json'), { recursive: true }); // a directory where the file should be
    const error = await rejection(loadProfiles(dir));
    expect(error.code).toBe('bad_profile_file');
    expect(error.message).toContain('cannot read');
  });

  it('a write that cannot happen is profile_save_failed, and leaves no temporary file', async () => {
    await mkdir(join(dir, 'profiles.json'), { recursive: true });
    await writeFile(join(dir, 'profiles.json', 'x'), 'keeps the directory non-empty');
    const error = await rejection(saveProfiles(dir, sample));
    expect(error.code).toBe('profile_save_failed');
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('managerUrlFor', () => {
  it('a bare host means https with a CA, http without; a typed scheme stays', () => {
    expect(managerUrlFor('10.0.0.1', true)).toBe('https://10.0.0.1:8008');
    expect(managerUrlFor('10.0.0.1:9008', true)).toBe('https://10.0.0.1:9008');
    expect(managerUrlFor('10.0.0.1', false)).toBe('http://10.0.0.1:8008');
    expect(managerUrlFor('http://10.0.0.1:8008', true)).toBe('http://10.0.0.1:8008');
    expect(managerUrlFor('https://h', false)).toBe('https://h');
  });
});

describe('normalizeManagerUrl', () => {
  it.each([
    ['127.0.0.11', 'http://127.0.0.11:8008'],
    ['127.0.0.11:9008', 'http://127.0.0.11:9008'],
    ['n1.example', 'http://n1.example:8008'],
    ['[::1]', 'http://[::1]:8008'],
    ['http://h:8008', 'http://h:8008'],
    ['http://h:8008/', 'http://h:8008'],
    ['HTTP://H:8008', 'http://h:8008'],
    ['https://h', 'https://h'],
    ['http://h', 'http://h'],
    ['https://h:8443/ha/', 'https://h:8443/ha'],
    ['  127.0.0.12  ', 'http://127.0.0.12:8008'],
  ])('%s -> %s', (input, url) => {
    expect(normalizeManagerUrl(input)).toBe(url);
  });

  it.each(['', 'ftp://h', 'http://', 'http://u:p@h:8008', 'http://h:8008/?x=1', 'h:99999'])(
    'refuses %p with bad_host (exit 2)',
    (input) => {
      try {
        normalizeManagerUrl(input);
        throw new Error('expected bad_host');
      } catch (e) {
        expect((e as SidecarError).code).toBe('bad_host');
        expect(exitCodeFor('bad_host')).toBe(2);
      }
    },
  );

  it('names profiles after the host, with the port unless it is 8008', () => {
    expect(defaultProfileName('http://127.0.0.11:8008')).toBe('127.0.0.11');
    expect(defaultProfileName('http://h:9008')).toBe('h:9008');
    expect(defaultProfileName('https://h')).toBe('h');
  });
});

describe('useProfile / updateProfile / rememberLeader', () => {
  it('adds a profile, makes it current and normalizes and de-duplicates the managers', async () => {
    const profile = await useProfile(dir, 'lab', {
      managers: ['127.0.0.11', 'http://127.0.0.11:8008/', '127.0.0.12'],
      token: 'tok',
      lastLeader: '127.0.0.12',
    });
    expect(profile).toEqual({
      managers: ['http://127.0.0.11:8008', 'http://127.0.0.12:8008'],
      token: 'tok',
      lastLeader: 'http://127.0.0.12:8008',
    });
    const file = await loadProfiles(dir);
    expect(file.current).toBe('lab');
    expect(await mode(profilesPath(dir))).toBe(0o600);
  });

  it('keeps the stored token when none is given, and switches the current profile', async () => {
    await useProfile(dir, 'a', { managers: ['h1'], token: 'kept' });
    await useProfile(dir, 'b', { managers: ['h2'] });
    await useProfile(dir, 'a', { managers: ['h1', 'h3'] });
    const file = await loadProfiles(dir);
    expect(file.current).toBe('a');
    expect(file.profiles.a).toEqual({ managers: ['http://h1:8008', 'http://h3:8008'], token: 'kept' });
    expect(Object.keys(file.profiles).sort()).toEqual(['a', 'b']);
  });

  it('drops a last leader that is no longer among the managers', async () => {
    await useProfile(dir, 'a', { managers: ['h1', 'h2'], lastLeader: 'h2' });
    const profile = await updateProfile(dir, 'a', { managers: ['h1', 'h3'] });
    expect(profile.lastLeader).toBeUndefined();
    expect((await loadProfiles(dir)).current).toBe('a');
  });

  it('rememberLeader writes only when the leader changed', async () => {
    await useProfile(dir, 'a', { managers: ['h1', 'h2'] });
    expect(await rememberLeader(dir, 'a', 'http://h2:8008')).toBe(true);
    expect((await loadProfiles(dir)).profiles.a?.lastLeader).toBe('http://h2:8008');
    // Every save renames a new file into place, so an unchanged inode means nothing was written.
    const before = (await stat(profilesPath(dir))).ino;
    expect(await rememberLeader(dir, 'a', 'h2')).toBe(false);
    expect((await stat(profilesPath(dir))).ino).toBe(before);
    expect(await rememberLeader(dir, 'missing', 'h2')).toBe(false);
  });

  it('rememberLeader keeps what another hactl wrote meanwhile', async () => {
    await useProfile(dir, 'a', { managers: ['h1'] });
    await useProfile(dir, 'b', { managers: ['h9'] });
    await rememberLeader(dir, 'a', 'h1');
    const file = await loadProfiles(dir);
    expect(file.current).toBe('b');
    expect(file.profiles.b?.managers).toEqual(['http://h9:8008']);
  });
});

describe('resolving, listing and showing', () => {
  it('resolves the current profile or a named one', async () => {
    await saveProfiles(dir, sample);
    expect((await currentProfile(dir)).name).toBe('prod');
    expect((await currentProfile(dir, 'lab')).profile.managers).toEqual(['http://127.0.0.11:8008']);
  });

  it('no current profile is no_profile, an unknown name is unknown_profile; both exit 2', () => {
    const none = () => resolveProfile({ current: null, profiles: {} });
    expect(none).toThrow('no current profile: run "hactl profiles use <host>" first');
    expect(() => resolveProfile(sample, 'nope')).toThrow('there is no profile "nope" (known profiles: prod, lab)');
    for (const code of ['no_profile', 'unknown_profile'] as const) expect(exitCodeFor(code)).toBe(2);
    try {
      none();
    } catch (e) {
      expect((e as SidecarError).code).toBe('no_profile');
    }
  });

  it('lists by name and never exposes a token', () => {
    const list = listProfiles(sample);
    expect(list.map((p) => [p.name, p.current, p.hasToken])).toEqual([
      ['lab', false, false],
      ['prod', true, true],
    ]);
    expect(JSON.stringify(list)).not.toContain('t0k');
    expect(showProfile(sample)).toEqual({
      name: 'prod',
      current: true,
      managers: sample.profiles.prod?.managers,
      hasToken: true,
      lastLeader: 'http://10.0.0.2:8008',
      caFile: null,
      certFile: null,
    });
    expect(JSON.stringify(showProfile(sample))).not.toContain('t0k');
  });

  it('the saved file is pretty JSON ending in a newline', async () => {
    await saveProfiles(dir, sample);
    const text = await readFile(profilesPath(dir), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(JSON.parse(text)).toEqual(sample);
  });
});

describe('deleting', () => {
  it('deletes a profile; deleting the current one leaves none current', async () => {
    await useProfile(dir, 'a', { managers: ['http://127.0.0.11:8008'], token: 'token-a' });
    await useProfile(dir, 'b', { managers: ['http://127.0.0.12:8008'] });
    expect(await deleteProfile(dir, 'a')).toEqual({ wasCurrent: false });
    expect(await loadProfiles(dir)).toEqual({ current: 'b', profiles: { b: { managers: ['http://127.0.0.12:8008'] } } });
    expect(await deleteProfile(dir, 'b')).toEqual({ wasCurrent: true });
    expect(await loadProfiles(dir)).toEqual({ current: null, profiles: {} });
  });

  it('an unknown name is unknown_profile (exit 2) and changes nothing', async () => {
    await useProfile(dir, 'a', { managers: ['http://127.0.0.11:8008'] });
    const before = await readFile(profilesPath(dir), 'utf8');
    const e = await rejection(deleteProfile(dir, 'zz'));
    expect([e.code, exitCodeFor(e.code)]).toEqual(['unknown_profile', 2]);
    expect(await readFile(profilesPath(dir), 'utf8')).toBe(before);
  });
});
