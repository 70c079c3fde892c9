import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, chown, copyFile, mkdtemp, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliContext } from '../../cli/context.js';
import { main } from '../../cli/hactl.js';
import { checkRotationDir, parseTlsNode, rotateNodeCertificate, subjectAltNames } from '../../cli/tls.js';
import { daysUntilExpiry, readCertificate } from '../../sidecar/shared/certificates.js';

/** `hactl cluster tls init` with the real openssl command, checked with Node's X509Certificate. */

let dir: string;
let out: string[];
let err: string[];
const ctx = (): CliContext => ({
  io: { out: (t) => out.push(t), err: (t) => err.push(t) },
  env: { HACTL_CONFIG_DIR: join(dir, 'profiles') },
  fetch: () => Promise.reject(new Error('tls init calls no manager')),
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hactl-tls-'));
  out = [];
  err = [];
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('hactl cluster tls init', () => {
  it('makes a CA and per-node certificates that verify against it, with name, address and server.dc1.consul as SANs and 0600 keys', async () => {
    const certs = join(dir, 'certs');
    const code = await main(['cluster', 'tls', 'init', '--dir', certs, '--node', 'n1=127.0.1.11', '--node', 'n2=db2.example', '--cluster-name', 'prod'], ctx());
    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect((await readdir(certs)).sort()).toEqual(['ca.crt', 'ca.key', 'n1.crt', 'n1.key', 'n2.crt', 'n2.key']);
    expect(out.join('\n')).toContain(join(certs, 'ca.crt'));
    expect(out.join('\n')).toContain(join(certs, 'n2.key'));
    expect(out.join('\n')).toMatch(/n1: .*n1\.crt .*n1\.key {2}\(expires in 82[45] days\)/);

    const ca = readCertificate(join(certs, 'ca.crt'));
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=ha-sidecar CA prod');
    expect(ca.verify(ca.publicKey)).toBe(true);
    for (const [name, san] of [['n1', 'DNS:n1, IP Address:127.0.1.11, DNS:server.dc1.consul'], ['n2', 'DNS:n2, DNS:db2.example, DNS:server.dc1.consul']] as const) {
      const cert = new X509Certificate(await readFile(join(certs, `${name}.crt`)));
      expect(cert.ca).toBe(false);
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subjectAltName).toBe(san);
      expect(cert.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
      // The key is the certificate's own.
      expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(certs, `${name}.key`))))).toBe(true);
      expect(daysUntilExpiry(cert)).toBe(824);
      expect((await stat(join(certs, `${name}.key`))).mode & 0o777).toBe(0o600);
    }
    expect((await stat(join(certs, 'ca.key'))).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(await readFile(join(certs, 'n1.crt'))).checkIP('127.0.1.11')).toBe('127.0.1.11');
  });

  it("names Consul's server name of --consul-datacenter", async () => {
    const certs = join(dir, 'certs');
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, '--node', 'n1=127.0.1.11', '--consul-datacenter', 'east-1'], ctx())).toBe(0);
    expect(readCertificate(join(certs, 'n1.crt')).subjectAltName).toBe('DNS:n1, IP Address:127.0.1.11, DNS:server.east-1.consul');
  });

  it('refuses a directory that already holds a CA, and changes nothing', async () => {
    const certs = join(dir, 'certs');
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, '--node', 'n1=127.0.1.11'], ctx())).toBe(0);
    const before = await readFile(join(certs, 'ca.crt'), 'utf8');
    err = [];
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, '--node', 'n1=127.0.1.11', '--node', 'n2=127.0.1.12'], ctx())).toBe(1);
    expect(err).toEqual([expect.stringMatching(/^hactl: tls_exists: .*ca\.crt, ca\.key, n1\.crt, n1\.key; nothing changed/)]);
    expect(await readFile(join(certs, 'ca.crt'), 'utf8')).toBe(before);
    expect((await readdir(certs)).sort()).toEqual(['ca.crt', 'ca.key', 'n1.crt', 'n1.key']);
  });

  it.each([
    [['--node', 'n1'], /^hactl: bad_value: --node "n1": give name=address/],
    [['--node', 'N1=127.0.1.11'], /^hactl: bad_value: --node "N1=127.0.1.11"/],
    [['--node', 'n1=not an address'], /^hactl: bad_value: .*neither an IP address nor a DNS name/],
    [['--node', 'n1=127.0.1.11', '--node', 'n1=127.0.1.12'], /^hactl: bad_value: --node n1 is given twice/],
    [['--node', 'n1=127.0.1.11', '--days', '0'], /^hactl: bad_value: --days takes a whole number/],
    [['--node', 'n1=127.0.1.11', '--consul-datacenter', 'dc 1'], /^hactl: bad_value: --consul-datacenter "dc 1": give Consul's datacenter name/],
  ])('refuses bad input %j with exit 2 and writes nothing', async (args, message) => {
    const certs = join(dir, 'certs');
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, ...args], ctx())).toBe(2);
    expect(err).toEqual([expect.stringMatching(message)]);
    await expect(stat(certs)).rejects.toThrow(/ENOENT/);
  });
});

describe('certificate helpers', () => {
  it('names an IP address as an IP SAN and a host name as a DNS SAN', () => {
    expect(subjectAltNames(parseTlsNode('n1=10.0.0.1'))).toBe('DNS:n1,IP:10.0.0.1,DNS:server.dc1.consul');
    expect(subjectAltNames(parseTlsNode('n1=::1'))).toBe('DNS:n1,IP:::1,DNS:server.dc1.consul');
    expect(subjectAltNames(parseTlsNode('n1=n1'), 'east')).toBe('DNS:n1,DNS:server.east.consul');
    // A client certificate cannot pass for a Consul server.
    expect(subjectAltNames({ ...parseTlsNode('hactl=127.0.0.1'), clientOnly: true })).toBe('DNS:hactl,IP:127.0.0.1');
  });

  it('counts whole days until expiry, negative once expired', async () => {
    const certs = join(dir, 'certs');
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, '--node', 'n1=127.0.1.11', '--days', '30'], ctx())).toBe(0);
    const cert = readCertificate(join(certs, 'n1.crt'));
    const expiry = Date.parse(cert.validTo);
    expect(daysUntilExpiry(cert)).toBe(29);
    expect(daysUntilExpiry(cert, new Date(expiry - 1000))).toBe(0);
    expect(daysUntilExpiry(cert, new Date(expiry + 1000))).toBe(-1);
  });
});

describe('tls rotate: the files (checkRotationDir, rotateNodeCertificate)', () => {
  const init = async (name: string, nodes: string[]) => {
    const certs = join(dir, name);
    expect(await main(['cluster', 'tls', 'init', '--dir', certs, ...nodes.flatMap((n) => ['--node', n])], ctx())).toBe(0);
    return certs;
  };

  it('a new key and certificate of the same CA with the old subject and SANs, renamed into place, 0600, nothing left behind', async () => {
    const certs = await init('certs', ['n1=127.0.1.11', 'n2=db2.example']);
    const ca = await checkRotationDir(certs, ['n1', 'n2']);
    const before = { cert: await readFile(join(certs, 'n2.crt'), 'utf8'), key: await readFile(join(certs, 'n2.key'), 'utf8') };
    const rotated = await rotateNodeCertificate(certs, ca, 'n2', 10);
    const cert = new X509Certificate(await readFile(join(certs, 'n2.crt')));
    expect(cert.fingerprint256).toBe(rotated.fingerprint256);
    expect(cert.fingerprint256).not.toBe(new X509Certificate(before.cert).fingerprint256);
    expect(await readFile(join(certs, 'n2.key'), 'utf8')).not.toBe(before.key);
    expect(cert.subject).toBe('CN=n2');
    expect(cert.subjectAltName).toBe('DNS:n2, DNS:db2.example, DNS:server.dc1.consul');
    expect(cert.checkIssued(ca.certificate) && cert.verify(ca.certificate.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(certs, 'n2.key'))))).toBe(true);
    expect(daysUntilExpiry(cert)).toBe(9);
    expect((await stat(join(certs, 'n2.key'))).mode & 0o777).toBe(0o600);
    // The old files' mode (and, as root, owner) are kept: a group that reads the key goes on reading it.
    await chmod(join(certs, 'n1.key'), 0o640);
    if (process.getuid?.() === 0) await chown(join(certs, 'n1.key'), 0, 4242);
    await rotateNodeCertificate(certs, ca, 'n1', 10);
    const n1Key = await stat(join(certs, 'n1.key'));
    expect(n1Key.mode & 0o777).toBe(0o640);
    if (process.getuid?.() === 0) expect(n1Key.gid).toBe(4242);
    expect((await readdir(certs)).sort()).toEqual(['ca.crt', 'ca.key', 'n1.crt', 'n1.key', 'n2.crt', 'n2.key']);
    // The IP SAN is carried over in openssl's form.
    await rotateNodeCertificate(certs, ca, 'n1', 10);
    expect(new X509Certificate(await readFile(join(certs, 'n1.crt'))).subjectAltName).toBe('DNS:n1, IP Address:127.0.1.11, DNS:server.dc1.consul');
  });

  it('refuses, before any change, a missing directory, a missing ca.key or node file, and another CA', async () => {
    const certs = await init('certs', ['n1=127.0.1.11']);
    await expect(checkRotationDir(join(dir, 'nowhere'), ['n1'])).rejects.toMatchObject({ code: 'tls_files_missing' });
    await expect(checkRotationDir(certs, ['n1', 'n3'])).rejects.toMatchObject({ code: 'tls_files_missing', message: expect.stringContaining('n3.crt') });
    const other = await init('other', ['n1=127.0.1.11']);
    await copyFile(join(other, 'ca.key'), join(certs, 'ca.key'));
    await expect(checkRotationDir(certs, ['n1'])).rejects.toMatchObject({ code: 'tls_ca_mismatch', message: expect.stringContaining('is not the key of') });
    await copyFile(join(other, 'ca.crt'), join(certs, 'ca.crt'));
    await expect(checkRotationDir(certs, ['n1'])).rejects.toMatchObject({ code: 'tls_ca_mismatch', message: expect.stringContaining("another cluster's CA") });
    await rm(join(certs, 'ca.key'));
    await expect(checkRotationDir(certs, ['n1'])).rejects.toMatchObject({ code: 'tls_files_missing', message: expect.stringContaining('run it where ca.key is') });
    // A CA key kept elsewhere (--ca-key): checked as the one in --dir would be.
    const apart = await init('apart', ['n1=127.0.1.11']);
    await rename(join(apart, 'ca.key'), join(dir, 'apart-ca.key'));
    await expect(checkRotationDir(apart, ['n1'], join(dir, 'apart-ca.key'))).resolves.toMatchObject({ key: join(dir, 'apart-ca.key') });
    await expect(checkRotationDir(apart, ['n1'], join(other, 'ca.key'))).rejects.toMatchObject({ code: 'tls_ca_mismatch' });
    await expect(checkRotationDir(apart, ['n1'], join(dir, 'nowhere.key'))).rejects.toMatchObject({ code: 'tls_files_missing', message: expect.stringContaining('nowhere.key') });
  });

  it('rotate --days outside 1..825 is bad_value, exit 2, before any call', async () => {
    expect(await main(['cluster', 'tls', 'rotate', '--dir', dir, '--days', '900'], ctx())).toBe(2);
    expect(err).toEqual([expect.stringMatching(/^hactl: bad_value: --days takes a whole number from 1 to 825/)]);
  });
});
