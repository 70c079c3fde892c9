import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderHba, renderPgpass, renderSidecarConf, scrubAutoConf, SIDECAR_CONF, withInclude } from './conf.js';
import { loadTlsMaterial } from '../shared/certificates.js';
import { chownTo, writeOwnedFile } from '../shared/process.js';
import { SUPERUSER, type PostgresNode } from './settings.js';
import type { PostgresIntent } from './state-file.js';

/** Whether the data directory holds an initialised cluster (PG_VERSION exists). */
export function hasDataDir(node: PostgresNode): boolean {
  return existsSync(join(node.settings.dataDir, 'PG_VERSION'));
}

/** The local data directory's system identifier (from global/pg_control), or null without one. */
export function systemIdentifier(node: PostgresNode): string | null {
  const control = join(node.settings.dataDir, 'global', 'pg_control');
  if (!existsSync(control)) return null;
  // ControlFileData starts with the 64-bit system identifier, in the machine's byte order (little-endian here).
  return readFileSync(control).readBigUInt64LE(0).toString();
}

/** The directories around the data directory, the password file and the TLS files' copies. */
export function prepareDirs(node: PostgresNode): void {
  const { dataDir, socketDir, replicationUser, replicationPassword, superuserPassword } = node.settings;
  mkdirSync(dirname(dataDir), { recursive: true });
  privateDirectory(socketDir, node.user);
  installTlsFiles(node);
  writeOwnedFile(
    node.passFile,
    renderPgpass([
      { user: replicationUser, password: replicationPassword },
      { user: SUPERUSER, password: superuserPassword },
    ]),
    node.user,
  );
}

/** A directory only Postgres's OS user may enter (0700, also when it existed with other modes). */
function privateDirectory(dir: string, user: PostgresNode['user']): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownTo(dir, user);
  chmodSync(dir, 0o700);
}

/**
 * Copies the node's certificate, key and CA (the config's `tls` files) to `node.tls`, owned by Postgres's OS
 * user, mode 0600. Postgres refuses a key file that is group or world readable or owned by another user, and
 * libpq (the walreceiver, pg_basebackup, pg_rewind, all running as that user) refuses one that is group or
 * world readable; the sidecar's own files may be root's, or in a directory Postgres cannot enter. The three
 * are checked together first (loadTlsMaterial: of the CA, in date, the key the certificate's), so a renewal
 * caught half-way fails with its code and leaves the copies Postgres uses as they were. Returns whether a
 * copy changed (a reload makes Postgres read them again).
 */
export function installTlsFiles(node: PostgresNode): boolean {
  const source = node.settings.tls;
  const copies = node.tls;
  if (!source || !copies) return false;
  const material = loadTlsMaterial(source);
  privateDirectory(dirname(copies.keyFile), node.user);
  let changed = false;
  for (const [file, content] of [[copies.certFile, material.cert], [copies.keyFile, material.key], [copies.caFile, material.ca]]) {
    if (existsSync(file) && readFileSync(file, 'utf8') === content) continue;
    writeOwnedFile(file, content, node.user);
    changed = true;
  }
  return changed;
}

/** The files writeConfig reads, writes or removes in a data directory. */
const CONFIG_FILES = ['postgresql.conf', 'postgresql.auto.conf', SIDECAR_CONF, 'pg_hba.conf', 'standby.signal'];

/**
 * What writeConfig's result depends on, as a string: the intent, and each of its files' inode, size, mtime
 * and ctime, or its absence. Any write to one of them (writeConfig's, an operator's, a clone's or a rewind's,
 * a data directory moved aside) changes its ctime or inode, so an equal stamp means writeConfig would change nothing.
 */
export function configStamp(node: PostgresNode, state: PostgresIntent): string {
  const files = CONFIG_FILES.map((file) => {
    const s = statSync(join(node.settings.dataDir, file), { throwIfNoEntry: false });
    return s ? `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}` : '-';
  });
  return `${JSON.stringify(state)} ${files.join(' ')}`;
}

/**
 * Writes the sidecar's files into a data directory (the live one, or a clone before it goes live) and
 * standby.signal per the intent. Returns whether ha-sidecar.conf or pg_hba.conf changed (reload needed).
 */
export function writeConfig(node: PostgresNode, state: PostgresIntent, dir = node.settings.dataDir): boolean {
  const { host, port, socketDir, replicationUser, memberAddresses } = node.settings;
  let changed = false;
  const put = (file: string, content: string): void => {
    const path = join(dir, file);
    const before = existsSync(path) ? readFileSync(path, 'utf8') : null;
    if (before === content) return;
    writeOwnedFile(path, content, node.user);
    changed = true;
  };
  const mainConf = join(dir, 'postgresql.conf');
  const included = withInclude(existsSync(mainConf) ? readFileSync(mainConf, 'utf8') : '');
  if (included !== null) put('postgresql.conf', included);
  const autoConf = join(dir, 'postgresql.auto.conf');
  const scrubbed = existsSync(autoConf) ? scrubAutoConf(readFileSync(autoConf, 'utf8')) : null;
  if (scrubbed !== null) put('postgresql.auto.conf', scrubbed);
  put(
    SIDECAR_CONF,
    renderSidecarConf({
      name: node.name,
      host,
      port,
      socketDir,
      passFile: node.passFile,
      replicationUser,
      upstream: state.intent === 'standby' ? state.upstream : null,
      synchronousStandbyNames: state.synchronousStandbyNames,
      tls: node.tls,
    }),
  );
  put('pg_hba.conf', renderHba(memberAddresses, replicationUser, node.tls !== null));
  const standbySignal = join(dir, 'standby.signal');
  if (state.intent === 'standby' && !existsSync(standbySignal)) writeOwnedFile(standbySignal, '', node.user);
  if (state.intent === 'primary') rmSync(standbySignal, { force: true });
  return changed;
}
