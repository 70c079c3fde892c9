import { APP_LOGIN, type TestCluster } from './cluster.js';

/**
 * Tries a tiny write directly on every node's Postgres every ~50 ms and records every sweep in which more than
 * one node accepted: the double-writer watcher of design rule 1. Expects a table `probe (node text)`.
 */
export class WriteWatcher {
  readonly doubleWriters: string[] = [];
  readonly writersSeen = new Set<string>();
  sweeps = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly cluster: TestCluster) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    const { names } = this.cluster;
    while (this.running) {
      const accepted = await Promise.all(
        names.map((name, i) => this.cluster.sql(i, 'insert into probe (node) values ($1)', [name], APP_LOGIN, 300).then(() => true, () => false)),
      );
      const writers = names.filter((_, i) => accepted[i]);
      writers.forEach((w) => this.writersSeen.add(w));
      if (writers.length > 1) this.doubleWriters.push(`${new Date().toISOString()} ${writers.join('+')}`);
      this.sweeps++;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
