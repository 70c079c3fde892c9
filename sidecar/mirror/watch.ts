import parcelWatcher from '@parcel/watcher';
import { relative, sep } from 'node:path';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { TEMP_PATTERN } from './paths.js';

/**
 * One watcher at every size, @parcel/watcher's inotify backend: one inotify watch per directory, kept in
 * native code, subscribed and unsubscribed off the event loop. (chokidar, used below 10,000 entries until
 * then, held one fs.watch handle per file: 736 MB at 100,000 files, and closing 100,000 of them when the tree
 * outgrew it held the event loop about 7 s, past the lease.) It reports a chmod, and drops no second change
 * of a path: every write after a batch is delivered raises a new event.
 *
 * Its gap: a directory that arrives with directories already inside (moved in, or made by `mkdir -p` faster
 * than its events are read) is watched, its subdirectories are not. The server watches the tree again then
 * (`MirrorServer.rewatch`). Pinned to inotify: the default would be watchman where one is installed, a
 * daemon outside the sidecar with other semantics.
 */
export interface DirectoryWatch {
  close(): Promise<void>;
}

const isTemp = (path: string) => TEMP_PATTERN.test(path.slice(path.lastIndexOf(sep) + 1));

/** Calls `changed` with the root-relative POSIX path of everything that changes below `root`. */
export async function watchDirectory(root: string, changed: (path: string) => void, log: Logger): Promise<DirectoryWatch> {
  const subscription = await parcelWatcher.subscribe(
    root,
    (err, events) => {
      if (err) log.warn('files: watcher error; the periodic rescan covers what it misses', { error: errorMessage(err) });
      for (const e of events) if (!isTemp(e.path)) changed(relative(root, e.path).split(sep).join('/'));
    },
    { backend: 'inotify' },
  );
  return { close: () => subscription.unsubscribe() };
}
