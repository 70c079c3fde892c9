import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';

/** The Consul build scripts/build-consul.sh pins (Consul release, raft library); keep the two in step. */
const CONSUL_BUILD = '1.16.2-raft1.7.3';

/** The Consul binary built by `npm run setup` (or $CONSUL_BIN). */
export function consulBinary(): string {
  const bin = process.env.CONSUL_BIN ?? join(projectRoot(), '.tools', 'consul', CONSUL_BUILD, 'consul');
  if (!existsSync(bin)) throw new Error(`consul binary not found at ${bin}: run \`npm run setup\` to build it`);
  return bin;
}

/** PostgreSQL 15 server binaries (Debian's postgresql-15), or $PG_BIN_DIR. */
export function postgresBinDir(): string {
  const dir = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
  if (!existsSync(join(dir, 'postgres'))) throw new Error(`PostgreSQL 15 not found in ${dir}: run \`npm run setup\``);
  return dir;
}
