import { basename, isAbsolute, relative } from 'node:path';
import type { CommandRegistrar } from '../context.js';
import type { AnyPart } from '../local/local-cluster.js';
import { PARTS } from '../local/local-cluster.js';
import { DEFAULT_BASE_ADDRESS } from '../local/layout.js';
import { localDown, localKill, localStart, localStatus, localUp } from '../local/operations.js';

/**
 * How the user runs hactl, for the hints `local up` prints: `hactl` through the npm bin, else
 * `node dist/cli/hactl.js` (what `npm start` runs), relative to the current directory when below it.
 */
function selfCommand(): string {
  const script = process.argv[1];
  if (script === undefined || basename(script) === 'hactl' || !/hactl\.js$/.test(script)) return 'hactl';
  const rel = relative(process.cwd(), script);
  return `node ${rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : script}`;
}

/** `hactl local up|down|status|kill|start`: a whole cluster on this machine (docs/design.md "Local cluster"). */
export const localCommands: CommandRegistrar = (cli, ctx) =>
  cli.command(
    'local',
    'Run a whole cluster on this machine (Consul, PostgreSQL and a sidecar per loopback address); $HACTL_LOCAL_DIR moves its directory',
    (y) =>
      y
        .command(
          'up',
          'Start the local cluster, print its status, then watch it until Ctrl-C (or return with --detach)',
          (c) =>
            c
              .option('nodes', { type: 'number', choices: [3, 5], describe: 'how many nodes (default 3, or as the last run)' })
              .option('detach', { type: 'boolean', default: false, describe: 'return once the cluster is healthy, leaving it running' })
              .option('base-address', {
                type: 'string',
                describe: `loopback address of n1; the others follow (default ${DEFAULT_BASE_ADDRESS}, or as the last run)`,
              })
              .option('postgres', { type: 'boolean', describe: 'run PostgreSQL on every node (--no-postgres: election only)' })
              .option('tls', {
                type: 'boolean',
                describe: 'the sidecar API over HTTPS with a local cluster CA and client certificates (default, or as the last run; --no-tls: plain HTTP, for a trial)',
              }),
          async (argv) => {
            await localUp(
              ctx,
              { nodes: argv.nodes, detach: argv.detach, baseAddress: argv.baseAddress, postgres: argv.postgres, tls: argv.tls },
              selfCommand(),
            );
          },
        )
        .command(
          'down',
          'Stop every process of the local cluster (sidecars first); its data stays unless --purge',
          (c) => c.option('purge', { type: 'boolean', default: false, describe: 'also remove the node directories and state.json' }),
          async (argv) => {
            await localDown(ctx, { purge: argv.purge });
          },
        )
        .command(
          'status',
          'Show each node: address, role, pids, directories',
          (c) => c.option('json', { type: 'boolean', default: false, describe: 'print JSON on stdout' }),
          async (argv) => {
            await localStatus(ctx, { json: argv.json });
          },
        )
        .command(
          'kill <node> [part]',
          'kill -9 one part of a node (default its sidecar), to watch a failover',
          (c) =>
            c
              .positional('node', { type: 'string', demandOption: true, describe: 'n1, n2, ...' })
              .positional('part', { type: 'string', choices: PARTS, default: 'sidecar', describe: 'which process' }),
          async (argv) => {
            await localKill(ctx, argv.node, argv.part as AnyPart);
          },
        )
        .command(
          'start <node> [part]',
          'Start again what is not running on a node (after "local kill"); its sidecar restarts its Postgres',
          (c) =>
            c
              .positional('node', { type: 'string', demandOption: true, describe: 'n1, n2, ...' })
              .positional('part', { type: 'string', choices: ['consul', 'sidecar'], describe: 'only this process' }),
          async (argv) => {
            await localStart(ctx, argv.node, argv.part as 'consul' | 'sidecar' | undefined);
          },
        )
        .demandCommand(1, 'say which local command: up, down, status, kill or start'),
  );
