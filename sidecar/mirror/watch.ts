import parcelWatcher from '@parcel/watcher';
import { watch as chokidarWatch } from 'chokidar';
import { relative, sep } from 'node:path';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { TEMP_PATTERN } from './paths.js';

/**
 * Up to this many entries the directory is watched with chokidar; above, with @parcel/watcher. chokidar
 * holds one fs.watch handle per file: measured RSS of a leader sidecar was 173 MB at 10,000 files, and it
 * cannot stay under 200 MB at 100,000. @parcel/watcher keeps one inotify watch per directory in native code
 * (72 MB for a process watching 100,000 files) and also reports a chmod, which chokidar drops.
 */
export const CHOKIDAR_MAX_ENTRIES = 10_000;

export interface DirectoryWatch {
  kind: 'chokidar' | '@parcel/watcher';
  close(): Promise<void>;
}

const isTemp = (path: string) => TEMP_PATTERN.test(path.slice(path.lastIndexOf(sep) + 1));

/** Calls `changed` with the root-relative POSIX path of everything that changes below `root`. */
export async function watchDirectory(root: string, entries: number, changed: (path: string) => void, log: Logger): Promise<DirectoryWatch> {
  const report = (full: string) => {
    if (!isTemp(full)) changed(relative(root, full).split(sep).join('/'));
  };
  const onError = (e: unknown) => log.warn('files: watcher error; the periodic rescan covers what it misses', { error: errorMessage(e) });
  if (entries > CHOKIDAR_MAX_ENTRIES) {
    const subscription = await parcelWatcher.subscribe(root, (err, events) => {
      if (err) onError(err);
      for (const e of events) report(e.path);
    });
    return { kind: '@parcel/watcher', close: () => subscription.unsubscribe() };
  }
  const watcher = chokidarWatch(root, {
    ignoreInitial: true,
    followSymlinks: false,
    // No 100 ms hold on deletions (chokidar's editor-save normalisation): every path is re-read anyway.
    atomic: false,
    ignored: isTemp,
  });
  watcher.on('all', (_event, path) => report(path));
  watcher.on('error', onError);
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return { kind: 'chokidar', close: () => watcher.close() };
}
