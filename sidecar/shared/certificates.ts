import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Whole days until `certificate` expires, counted from `now`: 0 on its last day, negative once expired. The
 * status, the metrics and the 30-day warning all read this one number.
 */
export function daysUntilExpiry(certificate: X509Certificate, now: Date = new Date()): number {
  return Math.floor((Date.parse(certificate.validTo) - now.getTime()) / DAY_MS);
}

/** The first certificate of a PEM file (a node's certificate, or the CA). */
export function readCertificate(file: string): X509Certificate {
  return new X509Certificate(readFileSync(file));
}
