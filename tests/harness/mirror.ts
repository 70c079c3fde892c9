import { createCipheriv, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import tls from 'node:tls';
import { clientTlsOptions } from '../../sidecar/mirror/tls.js';
import { CLUSTER_TOKEN, type TestCluster } from './cluster.js';
import { treeDigest } from './files.js';
import { waitFor } from './processes.js';

/** What /cluster says of a member's mirror (`members/<node>.files`). */
export interface FilesView {
  state: string;
  generation: number;
  behind?: number;
}

export async function filesOf(cluster: TestCluster): Promise<Record<string, FilesView | undefined>> {
  const members = (await cluster.members()) as unknown as { name: string; files?: FilesView; alive: boolean }[];
  return Object.fromEntries(members.map((m) => [m.name, m.alive ? m.files : undefined]));
}

/**
 * Waits until every node in `nodes` holds a tree identical to the leader's: first (cheaply) until each
 * follower says it is in sync at the leader's generation, then until the hashed trees agree.
 */
export async function waitIdentical(cluster: TestCluster, leader: number, nodes: number[], timeoutMs = 60_000): Promise<string> {
  const followers = nodes.filter((i) => i !== leader);
  // What the members said last, for the message when they never agree.
  let last = '';
  await waitFor('every follower in sync with the leader', async () => {
    const files = await filesOf(cluster);
    last = JSON.stringify(files);
    const gen = files[cluster.names[leader]]?.generation;
    return followers.every((i) => files[cluster.names[i]]?.state === 'in sync' && files[cluster.names[i]]?.generation === gen);
  }, timeoutMs, 50).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; the members' files last: ${last}`);
  });
  return waitFor('identical trees on every node', async () => {
    const digests = await Promise.all(nodes.map((i) => treeDigest(cluster.filesDir(i))));
    return digests.every((d) => d === digests[0]) ? digests[0] : undefined;
  }, timeoutMs, 500);
}

/** A file of `bytes` pseudo-random bytes (AES-CTR keystream: fast, incompressible), written with backpressure. */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= zeros.length) {
    if (!out.write(cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

/** A TLS connection to node i's mirror with a key derived from `token`; resolves once the handshake is done. */
export function connectMirror(host: string, token = CLUSTER_TOKEN, clusterName = 'test'): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: 22000, ...clientTlsOptions(token, clusterName) });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the peer sends until it closes the connection. */
export function readUntilClosed(socket: tls.TLSSocket, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error('the server did not close the connection')), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}
