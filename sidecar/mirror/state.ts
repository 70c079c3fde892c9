import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';

const stateSchema = z.object({
  /** The highest leader term this node has seen: a server with a lower one is refused (design rule 6). */
  highestTerm: z.number().int().nonnegative(),
  /** The epoch (leader and its start) `lastSeq` counts in, and that leader's term. */
  epoch: z.string(),
  epochTerm: z.number().int().nonnegative().default(0),
  /** The leader's sequence this copy has installed and fsynced in full (the follower's position). */
  lastSeq: z.number().int().nonnegative(),
  /** Device of the files directory when it last held entries: an empty root on another device is unmounted. */
  rootDevice: z.number().int().nullable(),
});
type State = z.infer<typeof stateSchema>;

/** Where a follower's copy stands: everything the leader of `term` numbered up to `seq` in `epoch` is installed. */
export interface MirrorPosition {
  term: number;
  epoch: string;
  seq: number;
}

/**
 * The mirror's state on disk (`<dataDir>/files-mirror.json`), written through a rename and fsynced before it
 * is relied on: a position read back after a power loss was installed, and a term seen stays seen.
 */
export class MirrorState {
  private value: State = { highestTerm: 0, epoch: '', epochTerm: 0, lastSeq: 0, rootDevice: null };

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

  get position(): MirrorPosition {
    return { term: this.value.epochTerm, epoch: this.value.epoch, seq: this.value.lastSeq };
  }

  get rootDevice(): number | null {
    return this.value.rootDevice;
  }

  update(change: Partial<State>): void {
    const next = { ...this.value, ...change, highestTerm: Math.max(this.value.highestTerm, change.highestTerm ?? 0) };
    if (JSON.stringify(next) === JSON.stringify(this.value)) return;
    this.value = next;
    const fd = openSync(`${this.file}.tmp`, 'w');
    try {
      writeSync(fd, JSON.stringify(next) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(`${this.file}.tmp`, this.file);
    const dir = openSync(dirname(this.file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
