import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initClusterTls, type TlsFiles } from '../../cli/tls.js';
import { EXPIRY_WARNING_DAYS, certificateExpiry, loadTlsMaterial } from '../../sidecar/shared/certificates.js';
import { expiredCertificate } from '../harness/tls.js';

/** loadTlsMaterial: the checks a sidecar runs on its tls files before it listens, with real openssl certificates. */

let dir: string;
let ours: TlsFiles;
let theirs: TlsFiles;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certificates-'));
  ours = await initClusterTls(join(dir, 'ours'), 'ours', [{ name: 'n1', address: '127.0.0.1' }, { name: 'n2', address: '127.0.0.2' }]);
  theirs = await initClusterTls(join(dir, 'theirs'), 'theirs', [{ name: 'n1', address: '127.0.0.1' }]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = (overrides: Partial<{ certFile: string; keyFile: string; caFile: string }> = {}) => ({
  certFile: ours.nodes[0]!.certFile,
  keyFile: ours.nodes[0]!.keyFile,
  caFile: ours.caFile,
  ...overrides,
});

describe('loadTlsMaterial', () => {
  it('reads a node certificate, its key and the CA that signed it', () => {
    const material = loadTlsMaterial(files());
    expect(material.cert).toContain('BEGIN CERTIFICATE');
    expect(material.key).toContain('PRIVATE KEY');
    expect(material.ca).toContain('BEGIN CERTIFICATE');
    expect(Date.parse(material.validTo)).toBeGreaterThan(Date.now());
  });

  it('a missing or unreadable file: tls_file_unreadable naming the field and the file', () => {
    expect(() => loadTlsMaterial(files({ caFile: join(dir, 'nope.crt') }))).toThrow(expect.objectContaining({ code: 'tls_file_unreadable', message: expect.stringContaining(`tls.caFile ${join(dir, 'nope.crt')}: cannot read it (ENOENT)`) }));
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.key');
      copyFileSync(ours.nodes[0]!.keyFile, locked);
      chmodSync(locked, 0o000);
      expect(() => loadTlsMaterial(files({ keyFile: locked }))).toThrow(expect.objectContaining({ code: 'tls_file_unreadable', message: expect.stringContaining('EACCES') }));
    }
  });

  it('an expired certificate: tls_certificate_expired with its date', () => {
    const expired = expiredCertificate({ certFile: ours.caFile, keyFile: ours.caKeyFile }, { name: 'n1', address: '127.0.0.1' }, dir);
    expect(() => loadTlsMaterial(files(expired))).toThrow(expect.objectContaining({ code: 'tls_certificate_expired', message: expect.stringContaining('expired on Jan  2 00:00:00 2020 GMT') }));
  });

  it("a certificate of another CA, another node's key, or a file that is no PEM: tls_certificate_invalid", () => {
    expect(() => loadTlsMaterial(files({ certFile: theirs.nodes[0]!.certFile, keyFile: theirs.nodes[0]!.keyFile }))).toThrow(
      expect.objectContaining({ code: 'tls_certificate_invalid', message: expect.stringContaining('is not signed by the CA in tls.caFile') }),
    );
    expect(() => loadTlsMaterial(files({ keyFile: ours.nodes[1]!.keyFile }))).toThrow(expect.objectContaining({ code: 'tls_certificate_invalid', message: expect.stringContaining('is not the key of tls.certFile') }));
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    expect(() => loadTlsMaterial(files({ certFile: garbage }))).toThrow(expect.objectContaining({ code: 'tls_certificate_invalid', message: expect.stringContaining('holds no PEM certificate') }));
    expect(() => loadTlsMaterial(files({ keyFile: garbage }))).toThrow(expect.objectContaining({ code: 'tls_certificate_invalid', message: expect.stringContaining('holds no PEM private key') }));
  });
});

describe('certificateExpiry: what the member record, the metrics and the status show', () => {
  it('a certificate issued for 10 days, loaded as the sidecar loads it: 9 whole days left, expiring', async () => {
    const short = await initClusterTls(join(dir, 'short'), 'short', [{ name: 'n1', address: '127.0.0.1' }], 10);
    const material = loadTlsMaterial({ certFile: short.nodes[0]!.certFile, keyFile: short.nodes[0]!.keyFile, caFile: short.caFile });
    expect(certificateExpiry(material.validTo)).toEqual({ validTo: material.validTo, daysLeft: 9, expiring: true });
    expect(material.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('expiring from EXPIRY_WARNING_DAYS left on, and once expired', () => {
    const validTo = 'Jan 31 00:00:00 2030 GMT';
    const daysBefore = (d: number) => new Date(Date.parse(validTo) - d * 24 * 3600 * 1000 - 1000);
    expect(certificateExpiry(validTo, daysBefore(EXPIRY_WARNING_DAYS + 1))).toMatchObject({ daysLeft: 31, expiring: false });
    expect(certificateExpiry(validTo, daysBefore(EXPIRY_WARNING_DAYS))).toMatchObject({ daysLeft: 30, expiring: true });
    expect(certificateExpiry(validTo, new Date(Date.parse(validTo) + 1000))).toMatchObject({ daysLeft: -1, expiring: true });
  });
});
