import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { TEMP_PATTERN } from './paths.js';

/** Watch handles closed per event-loop turn: closing one costs microseconds, a whole large tree at once would not. */
const CLOSE_BATCH = 1000;

/**
 * One `fs.watch` (an inotify watch) per directory, none per file: a directory's watch reports every change of
 * its entries (create, write, chmod, rename, delete), at once and without dropping a second change of a
 * path. Not chokidar: it held one handle per file, gave way to @parcel/watcher above 10,000 entries, and
 * closing 100,000 of its handles then held the event loop about 7 s, past the lease. Not @parcel/watcher: it
 * delays a change that follows another within 500 ms by 50 ms (propagation p50 62 -> 112 ms) and does not
 * watch the subdirectories of a directory that arrives with them.
 *
 * The scanner adds a directory's watch before it lists the directory (`add`), so a change is either in the
 * listing or raises an event; the server drops the watches of directories that left the manifest (`drop`).
 */
export class DirectoryWatch {
  private readonly watchers = new Map<string, FSWatcher>();
  /** Dropped watches not yet closed, and the loop that closes them. */
  private readonly closing: FSWatcher[] = [];
  private closer: Promise<void> | null = null;
  private closed = false;
  private warned = false;

  constructor(
    private readonly root: string,
    /** Called with the root-relative POSIX path of everything that changes. */
    private readonly changed: (path: string) => void,
    private readonly log: Logger,
  ) {}

  /** Watches the entries of directory `dir` (root-relative, '' for the root); does nothing if it is watched. */
  add(dir: string): void {
    if (this.closed || this.watchers.has(dir)) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(join(this.root, dir), (_event, name) => {
        if (name === null) this.changed(dir);
        else if (!TEMP_PATTERN.test(name)) this.changed(dir ? `${dir}/${name}` : name);
      });
    } catch (e) {
      // Gone already (its removal has its own event), or the inotify watch limit: the periodic rescan covers it.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR' && !this.warned) {
        this.warned = true;
        this.log.warn('files: cannot watch a directory; the periodic rescan covers what changes in it', { path: dir, error: errorMessage(e) });
      }
      return;
    }
    watcher.on('error', () => this.drop([dir]));
    this.watchers.set(dir, watcher);
  }

  /** Stops watching those of `paths` that are watched directories (they left the manifest, or are no longer directories). */
  drop(paths: Iterable<string>): void {
    for (const p of paths) {
      const watcher = this.watchers.get(p);
      if (!watcher) continue;
      this.watchers.delete(p);
      this.closing.push(watcher);
    }
    if (this.closing.length > 0) this.closer ??= this.closeDropped();
  }

  /** Closes every watch. */
  async close(): Promise<void> {
    this.closed = true;
    this.drop([...this.watchers.keys()]);
    await this.closer;
  }

  /** Closes the dropped watches, a batch per event-loop turn, so no removal of a large tree holds the loop. */
  private async closeDropped(): Promise<void> {
    while (this.closing.length > 0) {
      for (const w of this.closing.splice(0, CLOSE_BATCH)) w.close();
      await nextTurn();
    }
    this.closer = null;
  }
}
