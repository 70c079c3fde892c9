import { performance } from 'node:perf_hooks';
import { APP_LOGIN, type TestCluster } from './cluster.js';

/** One sweep of the write watcher: when it started (performance.now()) and which nodes accepted the write. */
export interface Sweep {
  at: number;
  writers: string[];
}

/**
 * Tries a tiny write directly on every node's Postgres every ~50 ms and keeps every sweep: a sweep in which more
 * than one node accepted is a double writer (design rule 1). Expects a table `probe (node text)`.
 */
export class WriteWatcher {
  readonly sweeps: Sweep[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly cluster: TestCluster) {
    this.done = this.run();
  }

  /** The sweeps with two or more writers, as `time node+node`. */
  get doubleWriters(): string[] {
    return this.sweeps.filter((s) => s.writers.length > 1).map((s) => `${s.at.toFixed(0)} ms ${s.writers.join('+')}`);
  }

  /** Whether `node` accepted a write in a sweep that started at or after `after`. */
  seen(node: string, after = 0): boolean {
    return this.sweeps.some((s) => s.at >= after && s.writers.includes(node));
  }

  private async run(): Promise<void> {
    const { names } = this.cluster;
    while (this.running) {
      const at = performance.now();
      const accepted = await Promise.all(
        names.map((name, i) => this.cluster.sql(i, 'insert into probe (node) values ($1)', [name], APP_LOGIN, 300).then(() => true, () => false)),
      );
      this.sweeps.push({ at, writers: names.filter((_, i) => accepted[i]) });
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
