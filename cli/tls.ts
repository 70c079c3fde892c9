import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SidecarError, errorMessage } from '../sidecar/errors.js';
import { lastLines } from '../sidecar/shared/process.js';
import { usageError } from './output.js';

/**
 * The cluster's certificate authority, made with the `openssl` command (Node's crypto reads certificates but
 * cannot issue them, and ASN.1 by hand is how certificates go wrong). One CA per cluster; one certificate per
 * node naming the node and its address, good for both ends of a connection (serverAuth + clientAuth), since
 * every sidecar is a server to its peers and a client of theirs.
 */

const run = promisify(execFile);

/** Ten years: the CA outlives many node certificates, which `tls rotate` replaces. */
const CA_DAYS = 3650;
/** 825 days, the longest lifetime browsers and most TLS clients still accept for a leaf certificate. */
export const NODE_DAYS = 825;
/** P-256: every TLS stack (Postgres' libpq, Consul's Go, Node) speaks it, and its handshakes are cheap. */
const KEY_ALGORITHM = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const KEY_MODE = 0o600;
const DIR_MODE = 0o700;

export interface TlsNode {
  name: string;
  /** An IP address or a DNS name; it becomes the certificate's second subject alternative name. */
  address: string;
  /**
   * Not a Consul server (hactl's or a test's client certificate): without `server.<dc>.consul`, so it cannot
   * pass for a server where Consul checks `verify_server_hostname`.
   */
  clientOnly?: boolean;
}

/** Consul's default datacenter, the one `consul-config/server.hcl.tmpl` is rendered with unless told otherwise. */
export const CONSUL_DATACENTER = 'dc1';

export interface TlsFiles {
  caFile: string;
  caKeyFile: string;
  nodes: { name: string; certFile: string; keyFile: string }[];
}

const NODE_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
/** A DNS name of letters, digits, dots and hyphens; anything else cannot be a SAN and is a typo. */
const DNS_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** `--node n1=10.0.0.1` as a node; throws `bad_value` (exit 2) for anything else. */
export function parseTlsNode(text: string): TlsNode {
  const at = text.indexOf('=');
  const name = at < 0 ? '' : text.slice(0, at);
  const address = at < 0 ? '' : text.slice(at + 1);
  if (!NODE_NAME.test(name)) throw usageError(`--node "${text}": give name=address, the name in lowercase letters, digits, - or _`, 'bad_value');
  if (isIP(address) === 0 && !DNS_NAME.test(address)) throw usageError(`--node "${text}": "${address}" is neither an IP address nor a DNS name`, 'bad_value');
  return { name, address };
}

/** `--consul-datacenter dc1`: a DNS label, since it becomes part of a DNS name in every node certificate. */
export function parseConsulDatacenter(text: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(text)) throw usageError(`--consul-datacenter "${text}": give Consul's datacenter name (letters, digits, -)`, 'bad_value');
  return text;
}

/**
 * The node certificate's subject alternative names: its name, its address as an IP or a DNS name, and (a node,
 * not a client) `server.<datacenter>.consul`, the name Consul's servers check of each other with
 * `verify_server_hostname` (consul-config/tls.hcl.tmpl), since every node runs a Consul server.
 */
export function subjectAltNames(node: TlsNode, consulDatacenter = CONSUL_DATACENTER): string {
  const names = [`DNS:${node.name}`, isIP(node.address) === 0 ? `DNS:${node.address}` : `IP:${node.address}`];
  if (node.clientOnly !== true) names.push(`DNS:${consulServerName(consulDatacenter)}`);
  return [...new Set(names)].join(',');
}

/** The name a Consul server's certificate must carry for `verify_server_hostname`. */
export const consulServerName = (datacenter: string): string => `server.${datacenter}.consul`;

async function openssl(args: string[], what: string): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (e) {
    const stderr = lastLines(String((e as { stderr?: unknown }).stderr ?? ''), 2).replaceAll('\n', ' ');
    throw new SidecarError('openssl_failed', `openssl could not ${what}: ${stderr || errorMessage(e)}`);
  }
}

/**
 * A node certificate of the CA `ca` with a new key, `<work>/<name>.crt|.key`: subject `CN=<name>`, the SANs
 * given (openssl's form, `DNS:n1,IP:10.0.0.1`), good for server and client use.
 */
async function issueNodeCertificate(work: string, ca: { crt: string; key: string }, name: string, sans: string, days: number): Promise<void> {
  await openssl(
    ['req', '-x509', ...KEY_ALGORITHM, '-keyout', join(work, `${name}.key`), '-out', join(work, `${name}.crt`), '-days', String(days),
      '-subj', `/CN=${name}`, '-CA', ca.crt, '-CAkey', ca.key,
      '-addext', `subjectAltName=${sans}`, '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment', '-addext', 'basicConstraints=critical,CA:FALSE'],
    `make the certificate of ${name}`,
  );
}

const exists = (path: string) => stat(path).then(() => true, () => false);

/**
 * Makes `<dir>/ca.crt`, `<dir>/ca.key` and `<dir>/<node>.crt|.key` for every node. Everything is written into
 * a private temporary directory first and moved in only when all of it was made, so a failure leaves `dir` as
 * it was; a `dir` that already holds any of these files is refused (`tls_exists`): a second CA would not
 * verify the certificates the nodes already use.
 */
export async function initClusterTls(dir: string, clusterName: string, nodes: TlsNode[], days = NODE_DAYS, consulDatacenter = CONSUL_DATACENTER): Promise<TlsFiles> {
  const names = nodes.map((n) => n.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw usageError(`--node ${duplicate} is given twice`, 'bad_value');
  if (nodes.length === 0) throw usageError('give at least one --node name=address', 'bad_value');
  const wanted = ['ca.crt', 'ca.key', ...names.flatMap((n) => [`${n}.crt`, `${n}.key`])];
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const taken = [];
  for (const file of wanted) if (await exists(join(dir, file))) taken.push(file);
  if (taken.length > 0) throw new SidecarError('tls_exists', `${dir} already holds ${taken.join(', ')}; nothing changed (use another --dir)`, 409);

  const work = await mkdtemp(join(dir, '.tls-init-'));
  try {
    const ca = { crt: join(work, 'ca.crt'), key: join(work, 'ca.key') };
    await openssl(
      ['req', '-x509', ...KEY_ALGORITHM, '-keyout', ca.key, '-out', ca.crt, '-days', String(CA_DAYS), '-subj', `/CN=ha-sidecar CA ${clusterName}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      'make the CA',
    );
    for (const node of nodes) await issueNodeCertificate(work, ca, node.name, subjectAltNames(node, consulDatacenter), days);
    // openssl writes keys 0600 under the usual umask; set it anyway, whatever the umask is.
    for (const file of await readdir(work)) await chmod(join(work, file), file.endsWith('.key') ? KEY_MODE : 0o644);
    for (const file of wanted) await rename(join(work, file), join(dir, file));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return {
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
    nodes: names.map((name) => ({ name, certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) })),
  };
}

/**
 * The SANs of a certificate in openssl's `-addext` form: Node shows `DNS:n1, IP Address:10.0.0.1`, openssl
 * takes `DNS:n1,IP:10.0.0.1`. Any other kind is refused rather than dropped from the new certificate.
 */
export function opensslSubjectAltNames(certificate: X509Certificate, file: string): string {
  const names = (certificate.subjectAltName ?? '').split(', ').filter((n) => n !== '');
  if (names.length === 0) throw new SidecarError('tls_ca_mismatch', `${file} names no subject alternative name: it is not a node certificate of tls init; nothing changed`, 400);
  return names
    .map((n) => {
      if (n.startsWith('DNS:')) return n;
      if (n.startsWith('IP Address:')) return `IP:${n.slice('IP Address:'.length)}`;
      throw new SidecarError('tls_ca_mismatch', `${file} has the subject alternative name "${n}", which rotate does not carry over (DNS and IP only); nothing changed`, 400);
    })
    .join(',');
}

/** The CA of a rotation: `<dir>/ca.crt` with its key, checked to belong together. */
export interface RotationCa {
  crt: string;
  key: string;
  certificate: X509Certificate;
  pem: string;
}

/**
 * What `tls rotate` needs in `dir` before it changes anything: the CA's certificate and key (the key its
 * own), and for each node `<name>.crt` and `<name>.key`, the certificate of that CA. `tls_files_missing`
 * (exit 2) for a file or directory that is not there, `tls_ca_mismatch` (exit 2) for one that does not fit.
 */
export async function checkRotationDir(dir: string, names: string[], caKey = join(dir, 'ca.key')): Promise<RotationCa> {
  const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new SidecarError('tls_files_missing', `--dir ${dir} is not a directory; nothing changed`, 400);
  const ca = { crt: join(dir, 'ca.crt'), key: caKey };
  const wanted = [ca.crt, ca.key, ...names.flatMap((n) => [join(dir, `${n}.crt`), join(dir, `${n}.key`)])];
  const missing = [];
  for (const file of wanted) if (!(await exists(file))) missing.push(file);
  if (missing.length > 0) {
    const why = missing.includes(ca.key) ? ' (rotate signs with the CA key: run it where ca.key is, or name it with --ca-key)' : '';
    throw new SidecarError('tls_files_missing', `missing ${missing.join(', ')}${why}; nothing changed`, 400);
  }
  const pem = await readFile(ca.crt, 'utf8');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
    if (!certificate.checkPrivateKey(createPrivateKey(await readFile(ca.key)))) throw new Error('not its key');
  } catch (e) {
    throw new SidecarError('tls_ca_mismatch', `${ca.key} is not the key of ${ca.crt} (${errorMessage(e)}); nothing changed`, 400);
  }
  for (const name of names) {
    const file = join(dir, `${name}.crt`);
    const node = new X509Certificate(await readFile(file));
    if (!node.checkIssued(certificate) || !node.verify(certificate.publicKey)) {
      throw new SidecarError('tls_ca_mismatch', `${file} is not signed by ${ca.crt}: --dir holds another cluster's CA; nothing changed`, 400);
    }
  }
  return { ...ca, certificate, pem };
}

/** A node's new certificate, in place of its old one. */
export interface RotatedCertificate {
  certFile: string;
  keyFile: string;
  fingerprint256: string;
  validTo: string;
}

/**
 * Replaces `<dir>/<name>.crt` and `.key` with a new key and a certificate of the same CA, subject and SANs
 * (read from the old certificate, so whatever names `tls init` gave it are kept), valid for `days`. Both are
 * made in a private temporary directory in `dir` (the same file system, so each rename is atomic) and renamed
 * into place back to back: a reader sees the old pair, the new pair, or for an instant a new key beside the
 * old certificate, which loadTlsMaterial refuses (409 on a reload, nothing changes), never a torn file.
 */
export async function rotateNodeCertificate(dir: string, ca: RotationCa, name: string, days: number): Promise<RotatedCertificate> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const old = new X509Certificate(await readFile(certFile));
  const sans = opensslSubjectAltNames(old, certFile);
  const work = await mkdtemp(join(dir, '.tls-rotate-'));
  try {
    await issueNodeCertificate(work, ca, name, sans, days);
    // The new files take the old ones' mode and owner: a key that Consul and the sidecar read through a group
    // (root:ha-tls 0640 in compose) must stay readable to them.
    for (const [file, made] of [[keyFile, `${name}.key`], [certFile, `${name}.crt`]] as const) {
      const was = await stat(file);
      await chmod(join(work, made), was.mode & 0o777);
      if (process.getuid?.() === 0) await chown(join(work, made), was.uid, was.gid);
    }
    const issued = new X509Certificate(await readFile(join(work, `${name}.crt`)));
    await rename(join(work, `${name}.key`), keyFile);
    await rename(join(work, `${name}.crt`), certFile);
    return { certFile, keyFile, fingerprint256: issued.fingerprint256, validTo: issued.validTo };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
