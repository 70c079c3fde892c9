import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

const stateSchema = z.object({
  /** The highest leader term this node has seen: a server with a lower one is refused (design rule 6). */
  highestTerm: z.number().int().nonnegative(),
  /** The epoch (leader and its start) `lastSeq` counts in. */
  epoch: z.string(),
  lastSeq: z.number().int().nonnegative(),
  /** Device of the files directory when it last held entries: an empty root on another device is unmounted. */
  rootDevice: z.number().int().nullable(),
});
type State = z.infer<typeof stateSchema>;

/** The mirror's state on disk (`<dataDir>/files-mirror.json`), written through a rename before it is relied on. */
export class MirrorState {
  private value: State = { highestTerm: 0, epoch: '', lastSeq: 0, rootDevice: null };

  constructor(private readonly file: string) {
    if (existsSync(file)) {
      const parsed = stateSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      // A corrupt state file loses only the sequence; the term is re-learnt from Consul before any connect.
      if (parsed.success) this.value = parsed.data;
    }
  }

  get highestTerm(): number {
    return this.value.highestTerm;
  }

  get epoch(): string {
    return this.value.epoch;
  }

  get lastSeq(): number {
    return this.value.lastSeq;
  }

  get rootDevice(): number | null {
    return this.value.rootDevice;
  }

  update(change: Partial<State>): void {
    const next = { ...this.value, ...change, highestTerm: Math.max(this.value.highestTerm, change.highestTerm ?? 0) };
    if (JSON.stringify(next) === JSON.stringify(this.value)) return;
    this.value = next;
    writeFileSync(`${this.file}.tmp`, JSON.stringify(next) + '\n');
    renameSync(`${this.file}.tmp`, this.file);
  }
}
