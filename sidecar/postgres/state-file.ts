import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { SidecarError, errorMessage } from '../errors.js';
import type { Upstream } from './conf.js';

/** The role the sidecar last gave a data directory, where it streams from, and its synchronous standbys. */
export interface PostgresIntent {
  intent: 'primary' | 'standby';
  upstream: Upstream | null;
  synchronousStandbyNames: string;
}
const intentSchema = z.object({
  intent: z.enum(['primary', 'standby']),
  upstream: z.object({ host: z.string(), port: z.number() }).nullable(),
  synchronousStandbyNames: z.string(),
});

/** What a node without a state file is: a standby of nobody yet, so no start can make it a writer. */
const DEFAULT_INTENT: PostgresIntent = { intent: 'standby', upstream: null, synchronousStandbyNames: '' };

/**
 * The intent file `<dataDir>.state.json`: persisted next to the data directory (never inside it, so clones
 * and rewinds cannot bring another node's). It is written (atomically: temporary file, rename) before the
 * action it announces, so a crash half-way leaves the new intent, never the old one.
 */
export class IntentFile {
  private value: PostgresIntent;

  constructor(readonly path: string) {
    this.value = this.load();
  }

  get current(): PostgresIntent {
    return this.value;
  }

  /** Whether the file exists (a data directory this node initialised as a primary has one). */
  exists(): boolean {
    return existsSync(this.path);
  }

  set(value: PostgresIntent): void {
    this.value = value;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.path);
  }

  private load(): PostgresIntent {
    if (!existsSync(this.path)) return DEFAULT_INTENT;
    try {
      return intentSchema.parse(JSON.parse(readFileSync(this.path, 'utf8')));
    } catch (e) {
      throw new SidecarError('invalid_state', `${this.path} is damaged (${errorMessage(e)}); remove it and the node restarts as a standby`);
    }
  }
}
