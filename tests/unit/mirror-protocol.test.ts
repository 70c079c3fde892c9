import { FrameDecoder, FrameError, MAX_FRAME_BYTES, batches, clientMessage, encodeData, encodeMessage, parseMessage, serverMessage } from '../../sidecar/mirror/protocol.js';

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof FrameError ? e.code : `not a FrameError: ${String(e)}`;
  }
  return undefined;
};

describe('mirror frame codec', () => {
  test('messages and data frames round-trip, split at every byte boundary', () => {
    const stream = Buffer.concat([encodeMessage({ t: 'get', path: 'a/b' }), ...encodeData(Buffer.from('hello')), encodeMessage({ t: 'heartbeat', seq: 7 })]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(frames).toEqual([
        { kind: 1, message: { t: 'get', path: 'a/b' } },
        { kind: 2, data: Buffer.from('hello') },
        { kind: 1, message: { t: 'heartbeat', seq: 7 } },
      ]);
      expect(() => d.end()).not.toThrow();
    }
  });

  test('a frame cut short is reported at the end of the stream', () => {
    const d = new FrameDecoder();
    expect(d.push(encodeMessage({ t: 'get', path: 'x' }).subarray(0, 8))).toEqual([]);
    expect(codeOf(() => d.end())).toBe('frame_truncated');
  });

  test('an oversized length is refused before any payload is buffered', () => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    header.writeUInt8(1, 4);
    expect(codeOf(() => new FrameDecoder().push(header))).toBe('frame_oversized');
  });

  test('garbage: an unknown kind or a payload that is not JSON', () => {
    expect(codeOf(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n')))).toBe('frame_oversized');
    expect(codeOf(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 1, 9, 0])))).toBe('frame_bad_kind');
    expect(codeOf(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 2, 1, 0x7b, 0x7b])))).toBe('frame_bad_message');
  });

  test('messages are checked against the schema of the receiving side', () => {
    expect(parseMessage(clientMessage, { t: 'hello', v: 1, node: 'n2', term: 3, lastSeq: 0, epoch: '' })).toMatchObject({ t: 'hello', term: 3 });
    expect(codeOf(() => parseMessage(clientMessage, { t: 'hello', v: 1, node: 'n2', term: -1, lastSeq: 0, epoch: '' }))).toBe('frame_bad_message');
    expect(codeOf(() => parseMessage(clientMessage, { t: 'welcome', node: 'n1', term: 1, epoch: 'e', seq: 0 }))).toBe('frame_bad_message');
    expect(codeOf(() => parseMessage(serverMessage, { t: 'change', seq: 1, upserts: [{ type: 'file', path: 'x', size: 1, mode: 0o644, mtimeMs: 1, sha256: 'nothex' }], removed: [] }))).toBe('frame_bad_message');
  });

  test('manifest batches stay under the frame limit and keep every item in order', () => {
    const items = Array.from({ length: 5000 }, (_, k) => `p${k}`);
    const out = batches(items, () => 1000);
    expect(out.flat()).toEqual(items);
    expect(Math.max(...out.map((b) => b.length))).toBeLessThanOrEqual(1049);
    expect(batches([], () => 1)).toEqual([]);
  });
});
