import { createHmac } from 'node:crypto';

/**
 * Secrets derived from the cluster token, so one secret configures a node; each purpose gets its own
 * (`postgres-superuser`, `replication`, `app`, the mirror's `files-psk`): HMAC-SHA256 keyed by the token over
 * `ha-sidecar:<purpose>`, base64url, 32 characters (192 bits). Knowing one derived secret reveals neither the
 * token nor another purpose's secret (docs/design.md "Secrets").
 */
export function deriveSecret(clusterToken: string, purpose: string): string {
  return createHmac('sha256', clusterToken).update(`ha-sidecar:${purpose}`).digest('base64url').slice(0, 32);
}
