import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { SidecarError, errorMessage } from '../sidecar/errors.js';
import type { ClientTls } from '../sidecar/shared/https-fetch.js';
import { usageError } from './output.js';

/**
 * hactl profiles: which managers make up a cluster, the cluster token, and the leader last seen.
 *
 * The file holds the cluster token, so it is written 0600 inside a 0700 directory, and always atomically
 * (temporary file + rename): a crash or a concurrent hactl never leaves half a file behind.
 */

/** Port of the sidecar HTTP API when a host is given without one (docs/design.md "Ports"). */
const DEFAULT_API_PORT = 8008;
const PROFILES_FILE = 'profiles.json';
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

const managerUrl = z.string().refine((s) => isHttpUrl(s), { message: 'not an http(s) URL' });

/**
 * The files hactl verifies the managers with: the cluster CA, and for servers with `verifyClient` a client
 * certificate of that CA with its key. Paths, read at each call, so a rotated CA needs no profile change.
 */
const ProfileTlsSchema = z
  .object({ caFile: z.string().min(1), certFile: z.string().min(1).optional(), keyFile: z.string().min(1).optional() })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), { message: 'give certFile and keyFile together' });

const ProfileSchema = z.object({
  managers: z.array(managerUrl),
  token: z.string().min(1).optional(),
  lastLeader: managerUrl.optional(),
  tls: ProfileTlsSchema.optional(),
});

const ProfilesFileSchema = z.object({
  current: z.string().nullable(),
  profiles: z.record(z.string(), ProfileSchema),
});

export type Profile = z.infer<typeof ProfileSchema>;
export type ProfileTls = z.infer<typeof ProfileTlsSchema>;
export type ProfilesFile = z.infer<typeof ProfilesFileSchema>;

/** The profiles file before the first `hactl profiles use`. */
const emptyProfiles = (): ProfilesFile => ({ current: null, profiles: {} });

/** The profiles directory: `$HACTL_CONFIG_DIR` when set (tests, the local cluster), else `~/.config/hactl`. */
export function configDir(env: Record<string, string | undefined> = process.env): string {
  const override = env.HACTL_CONFIG_DIR;
  return override !== undefined && override !== '' ? override : join(homedir(), '.config', 'hactl');
}

export const profilesPath = (dir: string): string => join(dir, PROFILES_FILE);

function isHttpUrl(s: string): boolean {
  try {
    const url = new URL(s);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * The base URL of a manager's sidecar API from what a user types: `127.0.0.11`, `n1.example:9008`,
 * `[::1]`, `http://h:8008`, `https://h/`. No scheme means http, no port means 8008; a trailing slash
 * is dropped so URLs compare equal. Throws `bad_host` (exit 2) for anything else.
 */
export function normalizeManagerUrl(host: string): string {
  const text = host.trim();
  if (text === '') throw usageError('a manager host is empty', 'bad_host');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw usageError(`"${host}" is not a host or http(s) URL`, 'bad_host');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw usageError(`"${host}" is not a host or http(s) URL`, 'bad_host');
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw usageError(`"${host}" must be a plain base URL (no credentials, query or fragment)`, 'bad_host');
  }
  // Only a URL typed without any scheme gets the sidecar's port; `http://h` means port 80 as usual.
  if (url.port === '' && withScheme !== text) url.port = String(DEFAULT_API_PORT);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * `normalizeManagerUrl`, where a host typed without a scheme means HTTPS when `https` (a profile with a CA):
 * `10.0.0.11` is then `https://10.0.0.11:8008`. A URL typed with its scheme keeps it.
 */
export function managerUrlFor(host: string, https: boolean): string {
  const url = normalizeManagerUrl(host);
  const schemeless = !/^[a-z][a-z0-9+.-]*:\/\//i.test(host.trim());
  return https && schemeless ? url.replace(/^http:/, 'https:') : url;
}

/** The profile name `profiles use` picks when no `--name` is given: the host, with the port unless 8008. */
export function defaultProfileName(managerUrl: string): string {
  const url = new URL(managerUrl);
  return url.port === '' || url.port === String(DEFAULT_API_PORT) ? url.hostname : url.host;
}

/**
 * Reads the profiles file. A missing file is an empty one; an unreadable, non-JSON or wrongly shaped file
 * is one `bad_profile_file` error that names the file and what is wrong, never a stack trace.
 */
export async function loadProfiles(dir: string): Promise<ProfilesFile> {
  const path = profilesPath(dir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyProfiles();
    throw new SidecarError('bad_profile_file', `cannot read ${path}: ${errorMessage(e)}`, 500, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SidecarError('bad_profile_file', `${path} is not valid JSON (${errorMessage(e)})`, 500, { path });
  }
  const parsed = ProfilesFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'top level';
    throw new SidecarError(
      'bad_profile_file',
      `${path} is not a valid profiles file: ${where}: ${issue?.message ?? 'invalid'}`,
      500,
      { path },
    );
  }
  return parsed.data;
}

/**
 * Writes the profiles file atomically with mode 0600, creating the directory with mode 0700. The
 * temporary file lives in the same directory so the rename cannot cross file systems.
 */
export async function saveProfiles(dir: string, file: ProfilesFile): Promise<void> {
  const path = profilesPath(dir);
  const checked = ProfilesFileSchema.parse(file);
  const temp = join(dir, `.${PROFILES_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    const handle = await open(temp, 'wx', FILE_MODE);
    try {
      // The umask may have taken bits away (or, if odd, left read bits on): set the mode explicitly.
      await handle.chmod(FILE_MODE);
      await handle.writeFile(`${JSON.stringify(checked, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await chmod(path, FILE_MODE);
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new SidecarError('profile_save_failed', `cannot write ${path}: ${errorMessage(e)}`, 500, { path });
  }
}

/** A profile together with its name. */
export interface NamedProfile {
  name: string;
  profile: Profile;
}

/**
 * The profile a command works on: `name` when given (must exist), else the current one. Throws
 * `unknown_profile` or `no_profile` (both exit 2), whose messages say how to fix it.
 */
export function resolveProfile(file: ProfilesFile, name?: string): NamedProfile {
  const wanted = name ?? file.current;
  if (wanted === null || wanted === undefined) {
    throw usageError('no current profile: run "hactl profiles use <host>" first', 'no_profile');
  }
  const profile = file.profiles[wanted];
  if (profile === undefined) {
    const known = Object.keys(file.profiles);
    const hint = known.length > 0 ? `known profiles: ${known.join(', ')}` : 'run "hactl profiles use <host>" first';
    throw usageError(`there is no profile "${wanted}" (${hint})`, 'unknown_profile');
  }
  return { name: wanted, profile };
}

/** Loads the file and resolves the profile (see `resolveProfile`). */
export async function currentProfile(dir: string, name?: string): Promise<NamedProfile> {
  return resolveProfile(await loadProfiles(dir), name);
}

export interface ProfileUpdate {
  managers: string[];
  /** Replaces the stored token when given; the stored one is kept otherwise. */
  token?: string;
  /** Replaces the stored last leader when given; dropped when it is no longer among the managers. */
  lastLeader?: string;
  /** Replaces the stored TLS files when given, removes them when null; the stored ones are kept when omitted. */
  tls?: ProfileTls | null;
}

/**
 * `profiles use`: adds the profile or updates it, and makes it current. Manager URLs are normalized and
 * de-duplicated in the order given.
 */
export async function useProfile(dir: string, name: string, update: ProfileUpdate): Promise<Profile> {
  if (name.trim() === '') throw usageError('a profile name is empty', 'bad_value');
  const file = await loadProfiles(dir);
  const profile = mergeProfile(file.profiles[name], update);
  file.profiles[name] = profile;
  file.current = name;
  await saveProfiles(dir, file);
  return profile;
}

/** Replaces a profile's manager list (and last leader) without changing which profile is current. */
export async function updateProfile(dir: string, name: string, update: ProfileUpdate): Promise<Profile> {
  const file = await loadProfiles(dir);
  const { profile: existing } = resolveProfile(file, name);
  const profile = mergeProfile(existing, update);
  file.profiles[name] = profile;
  await saveProfiles(dir, file);
  return profile;
}

function mergeProfile(existing: Profile | undefined, update: ProfileUpdate): Profile {
  const managers = uniqueUrls(update.managers);
  const token = update.token ?? existing?.token;
  const lastLeader = update.lastLeader !== undefined ? normalizeManagerUrl(update.lastLeader) : existing?.lastLeader;
  const tls = update.tls === null ? undefined : (update.tls ?? existing?.tls);
  const profile: Profile = { managers };
  if (token !== undefined) profile.token = token;
  if (tls !== undefined) profile.tls = tls;
  if (lastLeader !== undefined && managers.includes(lastLeader)) profile.lastLeader = lastLeader;
  return profile;
}

/**
 * `profiles delete`: removes the profile (and the token it holds). Deleting the current one leaves no
 * current profile. Throws `unknown_profile` (exit 2) when there is none of that name.
 */
export async function deleteProfile(dir: string, name: string): Promise<{ wasCurrent: boolean }> {
  const file = await loadProfiles(dir);
  resolveProfile(file, name);
  const wasCurrent = file.current === name;
  delete file.profiles[name];
  if (wasCurrent) file.current = null;
  await saveProfiles(dir, file);
  return { wasCurrent };
}

/** Normalizes URLs and drops repeats, keeping the first occurrence's position. */
function uniqueUrls(urls: readonly string[]): string[] {
  return [...new Set(urls.map(normalizeManagerUrl))];
}

/**
 * Records the leader a call found. Re-reads the file first so a concurrent hactl's changes survive, and
 * writes only when the value changed. Returns whether it wrote.
 */
export async function rememberLeader(dir: string, name: string, leaderUrl: string): Promise<boolean> {
  const url = normalizeManagerUrl(leaderUrl);
  const file = await loadProfiles(dir);
  const profile = file.profiles[name];
  if (profile === undefined || profile.lastLeader === url) return false;
  profile.lastLeader = url;
  await saveProfiles(dir, file);
  return true;
}

/** One row of `profiles list`. */
export interface ProfileSummary {
  name: string;
  current: boolean;
  managers: string[];
  hasToken: boolean;
  lastLeader: string | null;
  /** The CA file the managers are verified with; null when the profile uses none (plain HTTP, or the system's CAs). */
  caFile: string | null;
  /** The client certificate shown to managers with `verifyClient`; null when none. */
  certFile: string | null;
}

/** The profiles sorted by name, tokens left out. */
export function listProfiles(file: ProfilesFile): ProfileSummary[] {
  return Object.keys(file.profiles)
    .sort()
    .map((name) => summarize(file, name));
}

/** One profile (the current one when no name is given) for display, the token left out. */
export function showProfile(file: ProfilesFile, name?: string): ProfileSummary {
  return summarize(file, resolveProfile(file, name).name);
}

function summarize(file: ProfilesFile, name: string): ProfileSummary {
  const profile = file.profiles[name] as Profile;
  return {
    name,
    current: file.current === name,
    managers: [...profile.managers],
    hasToken: profile.token !== undefined,
    lastLeader: profile.lastLeader ?? null,
    caFile: profile.tls?.caFile ?? null,
    certFile: profile.tls?.certFile ?? null,
  };
}

/**
 * The PEM text of a profile's TLS files, for the HTTPS client. A file that cannot be read is one
 * `tls_file_unreadable` error naming it and the profile field.
 */
export function readProfileTls(tls: ProfileTls): ClientTls {
  const read = (file: string, field: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new SidecarError('tls_file_unreadable', `the profile's tls.${field} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`, 400);
    }
  };
  const client: ClientTls = { ca: read(tls.caFile, 'caFile') };
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    client.cert = read(tls.certFile, 'certFile');
    client.key = read(tls.keyFile, 'keyFile');
  }
  return client;
}
