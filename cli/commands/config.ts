import { z } from 'zod';
import type { DynamicConfig } from '../../sidecar/consul/records.js';
import { parseByteSize, parseDuration } from '../../sidecar/units.js';
import { parseAnswer } from '../api.js';
import type { CommandRegistrar } from '../context.js';
import { Session } from '../context.js';
import { formatBytes, renderTable, usageError } from '../output.js';

/**
 * How `hactl config set` reads each dynamic setting from the command line. Typed over `DynamicConfig`, so a
 * setting added to `sidecar/consul/records.ts` does not compile until it is settable here too.
 */
const SETTINGS: { [K in keyof DynamicConfig]-?: { parse: (text: string) => DynamicConfig[K]; help: string } } = {
  paused: { parse: (t) => bool('paused', t), help: 'true|false: no automatic failover' },
  synchronousMode: { parse: (t) => bool('synchronousMode', t), help: 'true|false: commits wait for one standby' },
  synchronousModeStrict: { parse: (t) => bool('synchronousModeStrict', t), help: 'true|false: wait even when no standby streams' },
  maxReplicaLag: {
    parse: (t) => {
      try {
        return parseByteSize(t);
      } catch (e) {
        throw usageError(`maxReplicaLag: ${(e as Error).message}`, 'bad_value');
      }
    },
    help: 'bytes or a size (16MB, 16MiB): the /replica lag limit',
  },
  snapshotKeep: {
    parse: (t) => {
      const n = Number(t);
      if (!/^\d+$/.test(t) || n < 1 || n > 1000) throw usageError(`snapshotKeep takes a whole number from 1 to 1000, not "${t}"`, 'bad_value');
      return n;
    },
    help: 'how many snapshots every node keeps (the newest)',
  },
  snapshotSchedule: {
    parse: (t) => {
      if (t === 'off') return t;
      try {
        parseDuration(t);
        return t;
      } catch (e) {
        throw usageError(`snapshotSchedule: ${(e as Error).message}, or off`, 'bad_value');
      }
    },
    help: 'off, or how often the leader takes a snapshot (6h, 1d)',
  },
};
const KEYS = Object.keys(SETTINGS) as (keyof DynamicConfig)[];

function bool(key: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw usageError(`${key} takes true or false, not "${text}"`, 'bad_value');
}

/** The answer of GET /config and PATCH /config: every setting, loose so a newer sidecar's extra ones pass. */
const ConfigAnswer = z.looseObject({
  paused: z.boolean(),
  synchronousMode: z.boolean(),
  synchronousModeStrict: z.boolean(),
  maxReplicaLag: z.number(),
  // A sidecar from before snapshots does not send these.
  snapshotKeep: z.number().optional(),
  snapshotSchedule: z.string().optional(),
});

/**
 * `key=value ...` of `hactl config set` as a PATCH body. Throws `bad_value` (exit 2) naming the first bad
 * pair (no `=`, an unknown or repeated key, a bad value), so nothing is sent unless every pair is good.
 */
export function parseAssignments(pairs: readonly string[]): Partial<DynamicConfig> {
  if (pairs.length === 0) throw usageError(`give at least one key=value; keys: ${KEYS.join(', ')}`, 'bad_value');
  const patch: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`"${pair}" is not key=value`, 'bad_value');
    const key = pair.slice(0, eq);
    if (!(KEYS as string[]).includes(key)) throw usageError(`unknown setting "${key}"; settings: ${KEYS.join(', ')}`, 'bad_value');
    if (key in patch) throw usageError(`${key} is given twice`, 'bad_value');
    patch[key] = SETTINGS[key as keyof DynamicConfig].parse(pair.slice(eq + 1));
  }
  return patch as Partial<DynamicConfig>;
}

const shown = (key: string, value: unknown): string => (key === 'maxReplicaLag' && typeof value === 'number' ? `${value} (${formatBytes(value)})` : String(value));

/** `key: old -> new` for every setting given, `(unchanged)` when it already had that value. */
export function renderConfigDiff(before: Record<string, unknown>, after: Record<string, unknown>, keys: readonly string[]): string[] {
  return keys.map((k) => (before[k] === after[k] ? `${k}: ${shown(k, after[k])} (unchanged)` : `${k}: ${shown(k, before[k])} -> ${shown(k, after[k])}`));
}

/** `hactl config show|set`: the dynamic cluster settings kept in Consul (`config` key). */
export const configCommands: CommandRegistrar = (cli, ctx) =>
  cli.command('config', 'Show or change the dynamic cluster settings', (y) =>
    y
      .command(
        'show',
        'Show the dynamic settings',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the /config JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.any({ method: 'GET', path: '/config' });
          const config = parseAnswer(ConfigAnswer, answer, 'GET /config');
          if (argv.json) ctx.io.out(JSON.stringify(config, null, 2));
          else renderTable(['SETTING', 'VALUE', 'MEANING'], KEYS.map((k) => [k, shown(k, config[k]), SETTINGS[k].help])).forEach((l) => ctx.io.out(l));
        },
      )
      .command(
        'set <settings..>',
        `Change settings on the leader, e.g. "hactl config set synchronousMode=true maxReplicaLag=32MB" (${KEYS.join(', ')})`,
        (c) => c.positional('settings', { type: 'string', array: true, demandOption: true, describe: 'key=value pairs' }),
        async (argv) => {
          const patch = parseAssignments(argv.settings);
          const session = await Session.open(ctx, argv);
          const before = parseAnswer(ConfigAnswer, await session.any({ method: 'GET', path: '/config' }), 'GET /config');
          const after = parseAnswer(ConfigAnswer, await session.leader({ method: 'PATCH', path: '/config', body: patch }), 'PATCH /config');
          renderConfigDiff(before, after, Object.keys(patch)).forEach((l) => ctx.io.out(l));
        },
      )
      .demandCommand(1, 'say which config command: show or set'),
  );
