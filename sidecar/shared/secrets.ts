import { createHmac } from 'node:crypto';

/**
 * Secrets derived from the cluster token, so one secret configures a node; each purpose gets its own
 * (`postgres-superuser`, `replication`, `app`, the mirror's `files-psk`): HMAC-SHA256 keyed by the token over
 * `ha-sidecar:<purpose>`, base64url, 32 characters (192 bits). Knowing one derived secret reveals neither the
 * token nor another purpose's secret (docs/design.md "Secrets").
 */
export function deriveSecret(clusterToken: string, purpose: string): string {
  return derivedBytes(clusterToken, purpose).toString('base64url').slice(0, 32);
}

/** The HMAC of a purpose's name keyed by the cluster token, all 32 bytes (see `deriveSecret`). */
function derivedBytes(clusterToken: string, purpose: string): Buffer {
  return createHmac('sha256', clusterToken).update(`ha-sidecar:${purpose}`).digest();
}

/**
 * Consul's gossip key (`encrypt`) from the cluster token (purpose `consul-gossip`): Consul takes exactly 32 bytes
 * in standard base64, so all of the HMAC, not `deriveSecret`'s 32 characters.
 */
export function deriveGossipKey(clusterToken: string): string {
  return derivedBytes(clusterToken, 'consul-gossip').toString('base64');
}

/**
 * A Consul ACL token's SecretID from the cluster token (`consul-management`, `consul-sidecar`): Consul wants a
 * UUID, so the first 16 bytes of the HMAC in UUID form, marked as version 4 and RFC 4122 variant. Derived,
 * not random, so every node and every restart of a local or test cluster agree without storing it.
 */
export function deriveConsulToken(clusterToken: string, purpose: 'consul-management' | 'consul-sidecar'): string {
  const b = derivedBytes(clusterToken, purpose).subarray(0, 16);
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
