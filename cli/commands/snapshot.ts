import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { SidecarError, answeredCode, errorMessage } from '../../sidecar/errors.js';
import type { FetchOptions } from '../../sidecar/shared/https-fetch.js';
import { ClusterViewSchema, parseAnswer } from '../api.js';
import { expectOk } from '../leader-client.js';
import type { CommandRegistrar } from '../context.js';
import { Session } from '../context.js';
import type { Io } from '../output.js';
import { cell, formatBytes, renderTable, usageError } from '../output.js';

/** The snapshots of a `GET /snapshots` answer: a list, or an object holding one under `snapshots`. */
function snapshotList(body: unknown): Record<string, unknown>[] | null {
  const list = Array.isArray(body)
    ? body
    : typeof body === 'object' && body !== null && Array.isArray((body as { snapshots?: unknown }).snapshots)
      ? (body as { snapshots: unknown[] }).snapshots
      : null;
  if (list === null || !list.every((s) => typeof s === 'object' && s !== null && !Array.isArray(s))) return null;
  return list as Record<string, unknown>[];
}

/** The lines of `hactl snapshot list`: one row per snapshot, with the nodes that hold a copy. */
function renderSnapshots(snapshots: Record<string, unknown>[]): string[] {
  if (snapshots.length === 0) return ['no snapshots yet'];
  const parts = (s: Record<string, unknown>) => Object.keys((s.parts as object | undefined) ?? {}).join('+');
  return renderTable(
    ['ID', 'CREATED', 'TERM', 'VERSION', 'SIZE', 'PARTS', 'NODES'],
    snapshots.map((s) => [cell(s.id), cell(s.createdAt), cell(s.term), cell(s.haSidecarVersion), typeof s.archiveSize === 'number' ? formatBytes(s.archiveSize) : '-', parts(s) || '-', Array.isArray(s.nodes) ? s.nodes.join(',') : '-']),
  );
}

/** The leader's API URL as any manager reports it in /cluster. Throws `no_leader` (exit 3). */
async function findLeader(session: Session): Promise<string> {
  const view = parseAnswer(ClusterViewSchema, await session.any({ method: 'GET', path: '/cluster' }), 'GET /cluster');
  const url = view.leader?.apiUrl;
  if (!url) throw new SidecarError('no_leader', 'no leader is elected: snapshots are taken and restored on the leader', 503);
  await session.noteLeader(url);
  return url.replace(/\/+$/, '');
}

/** An error answer as the SidecarError it carries: read as JSON (or text), then the client's `expectOk`. */
async function answerError(res: Response, url: string): Promise<unknown> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: expectOk quotes the text.
  }
  try {
    expectOk({ manager: url, status: res.status, body, attempts: [] });
  } catch (e) {
    return e;
  }
  return new SidecarError(answeredCode(`http_${res.status}`), `${url} answered HTTP ${res.status}`, res.status);
}

/**
 * Sends a long operation to the leader and prints each progress line the sidecar streams (NDJSON) as it
 * arrives, so the operator sees the work move. Resolves to the final result; the error line becomes a thrown
 * error with its code.
 */
async function streamOperation(io: Io, session: Session, path: string, upload?: string): Promise<Record<string, unknown>> {
  const url = `${await findLeader(session)}${path}`;
  const headers: Record<string, string> = { authorization: `Bearer ${session.profile.token ?? ''}` };
  const init: FetchOptions = { method: 'POST', headers };
  if (upload !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    init.body = createReadStream(upload);
    io.out(`uploading ${upload} (${formatBytes(statSync(upload).size)}) to ${url}; the leader checks it before it changes anything`);
  }
  let res: Response;
  try {
    res = await session.stream(url, init);
  } catch (e) {
    throw new SidecarError('no_reachable_leader', `${url} did not answer: ${errorMessage(e)}`, 503);
  }
  if (res.status !== 200 || !res.body) throw await answerError(res, url);
  let pending = '';
  for await (const chunk of Readable.fromWeb(res.body as WebReadableStream)) {
    pending += (chunk as Buffer).toString('utf8');
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = JSON.parse(pending.slice(0, newline)) as { progress?: string; done?: boolean; result?: Record<string, unknown>; error?: string; message?: string };
      pending = pending.slice(newline + 1);
      if (line.progress !== undefined) io.out(line.progress);
      if (line.error !== undefined) throw new SidecarError(answeredCode(line.error), line.message ?? line.error, 500);
      if (line.done) return line.result ?? {};
    }
  }
  throw new SidecarError('operation_interrupted', `${url} closed the answer before the operation finished: see \`hactl cluster status\` and the leader's log`, 502);
}

/** Saves snapshot `id` from the leader to `file` (via `file.part`), checking its sha256 on the way. */
async function download(io: Io, session: Session, id: string, file: string): Promise<void> {
  const url = `${await findLeader(session)}/snapshots/${encodeURIComponent(id)}`;
  const res = await session.stream(url, { headers: { authorization: `Bearer ${session.profile.token ?? ''}` } }).catch((e: unknown) => {
    throw new SidecarError('no_reachable_leader', `${url} did not answer: ${errorMessage(e)}`, 503);
  });
  if (res.status !== 200 || !res.body) throw await answerError(res, url);
  const size = Number(res.headers.get('content-length') ?? NaN);
  const expected = res.headers.get('x-snapshot-sha256');
  io.out(`downloading snapshot ${id} from ${url} (${formatBytes(size)})`);
  const hash = createHash('sha256');
  let received = 0;
  let reportedAt = Date.now();
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      if (Date.now() - reportedAt >= 1_000) {
        reportedAt = Date.now();
        io.out(`received ${formatBytes(received)} of ${formatBytes(size)}`);
      }
      done(null, chunk);
    },
  });
  const partial = `${file}.part`;
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), count, createWriteStream(partial));
    const sha = hash.digest('hex');
    if (expected !== null && sha !== expected) throw new SidecarError('snapshot_checksum_mismatch', `the download has sha256 ${sha}, the leader's archive ${expected}: not saved`, 502);
    renameSync(partial, file);
    io.out(`saved ${file} (${formatBytes(received)}, sha256 ${sha})`);
  } finally {
    rmSync(partial, { force: true });
  }
}

/** `hactl snapshot create|list|download|restore`. Snapshots are the leader's business, so each call finds it. */
export const snapshotCommands: CommandRegistrar = (cli, ctx) =>
  cli.command('snapshot', "Create, list, download and restore snapshots of the manager's data", (y) =>
    y
      .command(
        'create',
        'Take a snapshot on the leader (the standbys copy it)',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the result JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const result = await streamOperation(argv.json ? { out: () => undefined, err: ctx.io.err } : ctx.io, session, '/snapshots');
          ctx.io.out(argv.json ? JSON.stringify(result, null, 2) : `snapshot ${cell(result.id)} created`);
        },
      )
      .command(
        'list',
        'List the snapshots and the nodes holding each',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the answer JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          // The leader's view (its own copies first); any manager's when no leader is elected.
          const leader = await findLeader(session).catch(() => null);
          const request = { method: 'GET', path: '/snapshots' } as const;
          const answer = leader ? await session.direct(leader, request) : await session.any(request);
          const snapshots = snapshotList(answer.body);
          if (argv.json || snapshots === null) ctx.io.out(JSON.stringify(answer.body, null, 2));
          else renderSnapshots(snapshots).forEach((l) => ctx.io.out(l));
        },
      )
      .command(
        'download <id>',
        "Save a snapshot's archive from the leader to a file",
        (c) =>
          c
            .positional('id', { type: 'string', demandOption: true, describe: 'snapshot id' })
            .option('output', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'file to write' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          await download(ctx.io, session, argv.id, argv.output);
        },
      )
      .command(
        'restore [id]',
        'Restore a snapshot on the leader, failover paused meanwhile (the standbys follow)',
        (c) =>
          c
            .positional('id', { type: 'string', describe: 'id of a snapshot the cluster holds' })
            .option('file', { type: 'string', requiresArg: true, describe: 'an archive saved with `snapshot download` (from this or another cluster)' }),
        async (argv) => {
          if (argv.id === undefined && argv.file === undefined) throw usageError('say which snapshot to restore: an id, or --file FILE');
          if (argv.id !== undefined && argv.file !== undefined) throw usageError('give a snapshot id or --file FILE, not both');
          if (argv.file !== undefined && !existsSync(argv.file)) throw usageError(`no file ${argv.file}`, 'bad_value');
          const session = await Session.open(ctx, argv);
          const path = argv.file !== undefined ? '/snapshots/restore' : `/snapshots/${encodeURIComponent(argv.id!)}/restore`;
          const result = await streamOperation(ctx.io, session, path, argv.file);
          ctx.io.out(`snapshot ${cell(result.restored)} restored`);
        },
      )
      .demandCommand(1, 'say which snapshot command: create, list, download or restore'),
  );
