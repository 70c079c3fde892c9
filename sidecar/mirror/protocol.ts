import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { entrySchema } from './manifest.js';

/**
 * Frames on port 22000 (inside TLS): a 4-byte big-endian payload length, a 1-byte kind, the payload.
 * Kind 1 is a JSON message, kind 2 a chunk of the file being sent. Anything else, an oversized length or a
 * message that fails its schema closes the connection: a peer that speaks garbage gets nothing applied.
 */
export const FRAME_HEADER_BYTES = 5;
export const KIND_MESSAGE = 1;
export const KIND_DATA = 2;
/** Largest payload accepted: file chunks are 256 KiB, manifest batches stay well below this. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** 2: positions (`installed`), catch-up from the change log (`welcome.since`), TLS 1.3. */
export const PROTOCOL_VERSION = 2;
/** Manifest batches (snapshot and changes) stay far below the frame limit. */
const BATCH_BYTES = 1024 * 1024;

export class FrameError extends Error {
  constructor(
    readonly code: 'frame_oversized' | 'frame_bad_kind' | 'frame_bad_message' | 'frame_truncated',
    message: string,
  ) {
    super(message);
  }
}

const hello = z.object({ t: z.literal('hello'), v: z.number().int(), node: z.string().max(64), term: z.number().int().nonnegative(), lastSeq: z.number().int().nonnegative(), epoch: z.string().max(100) }).strict();
const get = z.object({ t: z.literal('get'), path: z.string().max(4096) }).strict();
/** The follower has installed and fsynced everything up to `seq` of this leader's epoch. */
const installed = z.object({ t: z.literal('installed'), seq: z.number().int().nonnegative() }).strict();
export const clientMessage = z.discriminatedUnion('t', [hello, get, installed]);
export type ClientMessage = z.infer<typeof clientMessage>;

/**
 * `since`: the leader still has every change after the follower's position, and sends those (not its
 * manifest) next; `digest` is its manifest's at `seq` (manifestDigest), for the follower to check its rebuild.
 */
const welcome = z
  .object({ t: z.literal('welcome'), node: z.string(), term: z.number().int().nonnegative(), epoch: z.string(), seq: z.number().int().nonnegative(), since: z.number().int().nonnegative().optional(), digest: z.string().max(64).optional() })
  .strict();
const refuse = z.object({ t: z.literal('refuse'), code: z.string(), message: z.string() }).strict();
const snapshot = z.object({ t: z.literal('snapshot'), seq: z.number().int().nonnegative(), entries: z.array(entrySchema), last: z.boolean() }).strict();
const change = z.object({ t: z.literal('change'), seq: z.number().int().nonnegative(), upserts: z.array(entrySchema), removed: z.array(z.string()) }).strict();
const fileStart = z.object({ t: z.literal('file'), path: z.string(), size: z.number().int().nonnegative() }).strict();
/** `changed`: the file changed on the leader while it was sent; the follower discards it and waits for the change. */
const fileEnd = z.object({ t: z.literal('end'), path: z.string(), size: z.number().int().nonnegative(), changed: z.boolean() }).strict();
const missing = z.object({ t: z.literal('missing'), path: z.string() }).strict();
const heartbeat = z.object({ t: z.literal('heartbeat'), seq: z.number().int().nonnegative() }).strict();
export const serverMessage = z.discriminatedUnion('t', [welcome, refuse, snapshot, change, fileStart, fileEnd, missing, heartbeat]);
export type ServerMessage = z.infer<typeof serverMessage>;

export function encodeMessage(message: ClientMessage | ServerMessage): Buffer {
  const payload = Buffer.from(JSON.stringify(message));
  return frame(KIND_MESSAGE, payload);
}

export function encodeData(chunk: Buffer): Buffer[] {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(chunk.length, 0);
  header.writeUInt8(KIND_DATA, 4);
  return [header, chunk];
}

function frame(kind: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_BYTES) throw new FrameError('frame_oversized', `frame of ${payload.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt8(kind, 4);
  return Buffer.concat([header, payload]);
}

export type Frame = { kind: typeof KIND_MESSAGE; message: unknown } | { kind: typeof KIND_DATA; data: Buffer };

/**
 * Splits a byte stream into frames. `push` returns every complete frame in the chunk and keeps the rest;
 * `end` throws `frame_truncated` when the stream stopped inside a frame. Buffers at most one frame.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      const kind = head.readUInt8(4);
      if (length > MAX_FRAME_BYTES) throw new FrameError('frame_oversized', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
      if (kind !== KIND_MESSAGE && kind !== KIND_DATA) throw new FrameError('frame_bad_kind', `unknown frame kind ${kind}`);
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      this.take(FRAME_HEADER_BYTES);
      const payload = this.take(length);
      if (kind === KIND_DATA) {
        frames.push({ kind, data: payload });
        continue;
      }
      let message: unknown;
      try {
        message = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new FrameError('frame_bad_message', 'message frame is not JSON');
      }
      frames.push({ kind, message });
    }
    return frames;
  }

  /** The stream ended: fine between frames, an error inside one. */
  end(): void {
    if (this.buffered > 0) throw new FrameError('frame_truncated', `connection closed inside a frame (${this.buffered} bytes pending)`);
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

/** Validates a decoded message against the schema of the side that receives it. */
export function parseMessage<T>(schema: z.ZodType<T>, message: unknown): T {
  const parsed = schema.safeParse(message);
  if (!parsed.success) throw new FrameError('frame_bad_message', `bad message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** Splits `items` into batches whose estimated encoded size stays under BATCH_BYTES. */
export function batches<T>(items: T[], size: (item: T) => number): T[][] {
  const out: T[][] = [];
  let batch: T[] = [];
  let bytes = 0;
  for (const item of items) {
    batch.push(item);
    bytes += size(item);
    if (bytes >= BATCH_BYTES) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/** Resolves when `socket` can take more, or has closed: a sender never waits forever on a dead peer. */
export function drained(socket: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
  });
}
