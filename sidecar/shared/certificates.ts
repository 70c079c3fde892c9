import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SidecarError, errorMessage } from '../errors.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** A certificate this close to its end is `expiring`: the status marks it and the sidecar warns (issue 21). */
export const EXPIRY_WARNING_DAYS = 30;

/**
 * Whole days until `certificate` expires, counted from `now`: 0 on its last day, negative once expired. The
 * status, the metrics and the 30-day warning all read this one number.
 */
export function daysUntilExpiry(certificate: X509Certificate, now: Date = new Date()): number {
  return certificateExpiry(certificate.validTo, now).daysLeft;
}

/** The first certificate of a PEM file (a node's certificate, or the CA). */
export function readCertificate(file: string): X509Certificate {
  return new X509Certificate(readFileSync(file));
}

/** Which files a node's TLS takes: the config's `tls` section. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** The PEM text of a node's certificate, its key and the cluster CA, checked to belong together. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
  /** When the node's certificate runs out (the log line at start, the member record's `tls`). */
  validTo: string;
  /** SHA-256 fingerprint of the node's certificate (`AB:CD:...`), as a TLS client sees it. */
  fingerprint256: string;
}

/** What the member record, the metrics and `hactl cluster status` show of a node's certificate. */
export interface CertificateExpiry {
  validTo: string;
  /** daysUntilExpiry: 0 on its last day, negative once expired. */
  daysLeft: number;
  /** At most EXPIRY_WARNING_DAYS left (or expired): time to run `hactl cluster tls rotate`. */
  expiring: boolean;
}

export function certificateExpiry(validTo: string, now: Date = new Date()): CertificateExpiry {
  const daysLeft = Math.floor((Date.parse(validTo) - now.getTime()) / DAY_MS);
  return { validTo, daysLeft, expiring: daysLeft <= EXPIRY_WARNING_DAYS };
}

function readPem(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new SidecarError('tls_file_unreadable', `tls.${field} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`);
  }
}

function parseCertificate(pem: string, file: string, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new SidecarError('tls_certificate_invalid', `tls.${field} ${file} holds no PEM certificate`);
  }
}

/**
 * Reads and checks the files of `tls` before anything listens, so a wrong file fails the start with one line
 * instead of every handshake failing later: each file readable, the certificate within its validity, signed by
 * the CA, and the key its own.
 */
export function loadTlsMaterial(tls: TlsFiles, now: Date = new Date()): TlsMaterial {
  const cert = readPem(tls.certFile, 'certFile');
  const key = readPem(tls.keyFile, 'keyFile');
  const ca = readPem(tls.caFile, 'caFile');
  const certificate = parseCertificate(cert, tls.certFile, 'certFile');
  const authority = parseCertificate(ca, tls.caFile, 'caFile');
  if (Date.parse(certificate.validTo) <= now.getTime()) {
    throw new SidecarError('tls_certificate_expired', `tls.certFile ${tls.certFile} expired on ${certificate.validTo}: make a new one (hactl cluster tls init)`);
  }
  if (Date.parse(certificate.validFrom) > now.getTime()) {
    throw new SidecarError('tls_certificate_invalid', `tls.certFile ${tls.certFile} is not valid before ${certificate.validFrom} (is this machine's clock right?)`);
  }
  if (!certificate.checkIssued(authority) || !certificate.verify(authority.publicKey)) {
    throw new SidecarError('tls_certificate_invalid', `tls.certFile ${tls.certFile} is not signed by the CA in tls.caFile ${tls.caFile}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new SidecarError('tls_certificate_invalid', `tls.keyFile ${tls.keyFile} holds no PEM private key`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new SidecarError('tls_certificate_invalid', `tls.keyFile ${tls.keyFile} is not the key of tls.certFile ${tls.certFile}`);
  }
  return { cert, key, ca, validTo: certificate.validTo, fingerprint256: certificate.fingerprint256 };
}
