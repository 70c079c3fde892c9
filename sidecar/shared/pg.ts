import { Module, createRequire } from 'node:module';
import { Socket } from 'node:net';
import { connect, type ConnectionOptions } from 'node:tls';
import type pgModule from 'pg';

/**
 * The `pg` package, loaded without its Cloudflare Workers probe. Every value import of `pg` goes through this
 * file (`npm run lint` refuses one elsewhere; `import type` is free).
 *
 * At load, pg's `lib/stream.js` asks whether it runs in a Cloudflare Worker by building a `new Response(...)`,
 * and on Node 20 the first `Response` loads undici, for a class the sidecar never uses: about 2.5 MB of RSS
 * beside the sidecar's other modules (module load 79-80 -> 75 MB with this file; docs/design.md "Idle cost").
 * This file puts pg's Node.js stream functions, the same two that `lib/stream.js` returns off Cloudflare, in the
 * require cache under that module's name before pg is loaded, so the probe never runs.
 */
const require = createRequire(import.meta.url);
const streamFile = require.resolve('pg/lib/stream.js');
if (require.cache[streamFile] === undefined) {
  const stream = new Module(streamFile);
  stream.filename = streamFile;
  stream.loaded = true;
  stream.exports = {
    getStream: () => new Socket(),
    getSecureStream: (options: ConnectionOptions) => connect(options),
  };
  require.cache[streamFile] = stream;
}

const pg = require('pg') as typeof pgModule;

export const { Client, Pool } = pg;
