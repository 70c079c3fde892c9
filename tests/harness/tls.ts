import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initClusterTls, subjectAltNames, type TlsFiles, type TlsNode } from '../../cli/tls.js';
import type { TestCluster } from './cluster.js';
import type { TestHaproxy } from './haproxy.js';

/**
 * A node certificate of `ca` that expired in 2020, for the tests that an expired certificate is refused.
 * `hactl cluster tls init` cannot make one (its lifetime starts now); `openssl ca` takes dates of its own.
 */
export function expiredCertificate(ca: { certFile: string; keyFile: string }, node: TlsNode, dir: string): { certFile: string; keyFile: string } {
  return signedCertificate(ca, node, dir, 'expired', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']);
}

/** A second, valid certificate of `ca` for `node` with a key of its own, as a renewal gives (`tls init` refuses a directory it wrote). */
export function renewedCertificate(ca: { certFile: string; keyFile: string }, node: TlsNode, dir: string): { certFile: string; keyFile: string } {
  return signedCertificate(ca, node, dir, 'renewed', ['-days', '30']);
}

function signedCertificate(ca: { certFile: string; keyFile: string }, node: TlsNode, dir: string, kind: string, validity: string[]): { certFile: string; keyFile: string } {
  const work = mkdtempSync(join(dir, `.${kind}-`));
  const certFile = join(dir, `${node.name}-${kind}.crt`);
  const keyFile = join(dir, `${node.name}-${kind}.key`);
  try {
    writeFileSync(join(work, 'index.txt'), '');
    writeFileSync(join(work, 'serial'), '01\n');
    writeFileSync(join(work, 'ca.cnf'), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${work}/index.txt\nnew_certs_dir = ${work}\nserial = ${work}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`);
    writeFileSync(join(work, 'ext.cnf'), `subjectAltName=${subjectAltNames(node)}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', join(work, 'req.csr'), '-subj', `/CN=${node.name}`]);
    run(['ca', '-batch', '-config', join(work, 'ca.cnf'), '-cert', ca.certFile, '-keyfile', ca.keyFile, '-in', join(work, 'req.csr'), '-out', certFile,
      ...validity, '-extfile', join(work, 'ext.cnf')]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { certFile, keyFile };
}

/**
 * A TLS suite's cluster with HAProxy in front, started before its tests and stopped after them (and `scratch`
 * removed), with a second CA made in `scratch` for what must be refused: `other()`, one certificate `intruder`.
 */
export function tlsClusterSuite(cluster: TestCluster, haproxy: TestHaproxy, scratch: string): { other: () => TlsFiles } {
  let other: TlsFiles | undefined;
  beforeAll(async () => {
    other = await initClusterTls(join(scratch, 'other-ca'), 'other', [{ name: 'intruder', address: '127.0.0.1' }]);
    await cluster.start();
    await cluster.waitAllStreaming();
    haproxy.start();
  }, 240_000);
  afterAll(async () => {
    await cluster.stop();
    rmSync(scratch, { recursive: true, force: true });
  }, 60_000);
  return { other: () => other! };
}
