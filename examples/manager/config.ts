import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * The sample manager's config file (`manager.json`, one per node), read by the server and by its hook. It
 * holds the application database password, so whoever writes it makes it 0600.
 */
export const sampleConfigSchema = z
  .object({
    node: z.string().min(1),
    /** Where the manager listens: the node's own address. */
    address: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(8080),
    /** The sidecar API of this node: the manager serves as leader only while its sidecar says it leads. */
    sidecarApiUrl: z.url(),
    /** With the sidecar API over HTTPS: its CA, and a certificate of it to show (the node's own), as PEM files. */
    sidecarApiTls: z.object({ caFile: z.string().min(1), certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
    /** The directory the file mirror keeps in step on every node: uploads go here. */
    filesDir: z.string().min(1),
    /** Role file, pid file and log of the manager process. */
    stateDir: z.string().min(1),
    /** The node's own Postgres; `caFile` when it speaks SSL: its certificate is then verified against that CA (verify-full). */
    postgres: z.object({ host: z.string(), port: z.number().int(), user: z.string(), password: z.string(), database: z.string(), caFile: z.string().min(1).optional() }).strict(),
  })
  .strict();

export type SampleConfig = z.infer<typeof sampleConfigSchema>;

export function readSampleConfig(file: string): SampleConfig {
  return sampleConfigSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/** What the hooks tell the manager: written atomically by hook.ts, read by server.ts on every request. */
export const roleFileSchema = z.object({ role: z.enum(['leader', 'standby', 'stopped']), term: z.number().int().nonnegative(), at: z.string() });
export type RoleFile = z.infer<typeof roleFileSchema>;

export const paths = (c: SampleConfig) => ({
  role: join(c.stateDir, 'role.json'),
  pid: join(c.stateDir, 'manager.pid'),
  log: join(c.stateDir, 'manager.log'),
});

/** The value after `--config` on a command line. */
export function configArg(argv: string[]): string {
  const i = argv.indexOf('--config');
  const file = i >= 0 ? argv[i + 1] : undefined;
  if (!file) throw new Error('usage: --config <manager.json> is required');
  return file;
}
