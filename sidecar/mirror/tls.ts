import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { deriveSecret } from '../shared/secrets.js';

/**
 * Both ends prove they hold the cluster token with TLS-PSK: the key derives from the token, so a peer of
 * another cluster (or none) fails the handshake and never sees a byte of the directory. Node offers PSK with
 * TLS 1.2 only, hence 1.2; the ECDHE suite gives forward secrecy, so a leaked token does not open recorded
 * sessions.
 */
const PSK_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305';

export function mirrorKey(clusterToken: string): Buffer {
  return Buffer.from(deriveSecret(clusterToken, 'files-psk'), 'utf8');
}

export function pskIdentity(clusterName: string): string {
  return `ha-sidecar-files:${clusterName}`;
}

/** What both ends agree on: Node's TLS-PSK exists for TLS 1.2 only. */
const PSK_PROTOCOL = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: PSK_CIPHERS } as const;

/** Server side: only the identity of this cluster gets a key; any other identity fails the handshake. */
export function serverTlsOptions(clusterToken: string, clusterName: string): TlsOptions {
  const key = mirrorKey(clusterToken);
  const identity = pskIdentity(clusterName);
  return {
    ...PSK_PROTOCOL,
    pskIdentityHint: identity,
    pskCallback: (_socket, id) => (id === identity ? key : null),
  };
}

export function clientTlsOptions(clusterToken: string, clusterName: string): ConnectionOptions {
  const key = mirrorKey(clusterToken);
  const identity = pskIdentity(clusterName);
  return {
    ...PSK_PROTOCOL,
    pskCallback: () => ({ psk: key, identity }),
    // PSK authenticates the server; there is no certificate to check.
    checkServerIdentity: () => undefined,
  };
}
