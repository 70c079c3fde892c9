import type { ConnectionOptions, TlsOptions } from 'node:tls';
import { deriveSecret } from '../shared/secrets.js';

/**
 * Both ends prove they hold the cluster token with TLS-PSK: the key derives from the token, so a peer of
 * another cluster (or none) fails the handshake (the PSK binder does not verify) and never sees a byte of the
 * directory. TLS 1.3 with AES-128-GCM, which runs on the CPU's AES instructions (several times the speed of
 * ChaCha20-Poly1305, the only ECDHE-PSK AEAD OpenSSL offers for TLS 1.2); TLS 1.3's PSK handshake also makes
 * an X25519 key exchange (psk_dhe_ke), so a leaked token does not open recorded sessions.
 */
const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256';

export function mirrorKey(clusterToken: string): Buffer {
  return Buffer.from(deriveSecret(clusterToken, 'files-psk'), 'utf8');
}

export function pskIdentity(clusterName: string): string {
  return `ha-sidecar-files:${clusterName}`;
}

/** What both ends agree on; a peer of an older version (TLS 1.2 only) fails the handshake. */
const PSK_PROTOCOL = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: PSK_CIPHERS } as const;

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
