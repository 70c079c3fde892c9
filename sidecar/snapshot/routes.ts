import { createReadStream } from 'node:fs';
import type express from 'express';
import type { RequestHandler, Response } from 'express';
import { errorMessage, isSidecarError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Progress, SnapshotService } from './service.js';

/**
 * Runs a long operation and streams its progress as NDJSON lines, `{"progress": "..."}`, ending with
 * `{"done": true, "result": ...}` or `{"error": code, "message": ...}`. Everything that refuses the
 * operation (bad id, damaged archive, not the leader) is checked before the 200 goes out, so a refusal is
 * an ordinary 4xx answer; only a failure while working arrives as the last line.
 */
async function streamOperation(res: Response, log: Logger, what: string, run: (progress: Progress) => Promise<unknown>): Promise<void> {
  res.status(200).type('application/x-ndjson');
  res.flushHeaders();
  const send = (line: Record<string, unknown>) => res.write(JSON.stringify(line) + '\n');
  try {
    const result = await run((progress) => {
      log.info(`${what}: ${progress}`);
      send({ progress, at: new Date().toISOString() });
    });
    send({ done: true, result });
  } catch (e) {
    log.error(`${what} failed`, { error: errorMessage(e), code: isSidecarError(e) ? e.code : undefined });
    send({ error: isSidecarError(e) ? e.code : 'snapshot_failed', message: errorMessage(e) });
  }
  res.end();
}

/** The snapshot calls of the API (docs/operations.md "Snapshots"); mutating ones need the cluster token and the leader. */
export function addSnapshotRoutes(app: express.Express, service: SnapshotService, auth: RequestHandler, leaderOnly: RequestHandler, log: Logger): void {
  app.get('/snapshots', async (_req, res) => res.json(await service.listCluster()));
  // What a peer reads: this node's own copies only.
  app.get('/snapshots/local', (_req, res) => res.json({ snapshots: service.list() }));
  app.post('/snapshots', auth, leaderOnly, async (_req, res) => {
    const run = service.beginCreate();
    await streamOperation(res, log, 'snapshot', run);
  });
  // The archive as stored; standbys pull it this way, and `hactl snapshot download` too.
  app.get('/snapshots/:id', auth, (req, res, next) => {
    const { path, record } = service.archive(String(req.params.id));
    res.status(200).set({ 'content-type': 'application/x-tar', 'content-length': String(record.archiveSize), 'x-snapshot-sha256': record.archiveSha256 });
    createReadStream(path).on('error', next).pipe(res);
  });
  app.post('/snapshots/restore', auth, leaderOnly, async (req, res) => {
    const run = await service.beginRestoreUpload(req);
    await streamOperation(res, log, 'restore', run);
  });
  app.post('/snapshots/:id/restore', auth, leaderOnly, async (req, res) => {
    const run = await service.beginRestoreOf(String(req.params.id));
    await streamOperation(res, log, 'restore', run);
  });
}
