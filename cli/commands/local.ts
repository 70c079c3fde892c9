import { SidecarError } from '../../sidecar/errors.js';
import type { CommandRegistrar } from '../context.js';

/**
 * Placeholder for `hactl local up|down|status|kill` (a whole cluster on one machine). The real module,
 * under `cli/local/`, replaces this registrar in `cli/commands/index.ts`.
 */
export const localCommands: CommandRegistrar = (cli) =>
  cli.command(
    'local <action>',
    'Run a whole cluster on this machine (not built yet)',
    (y) =>
      y
        .positional('action', { type: 'string', choices: ['up', 'down', 'status', 'kill'], demandOption: true })
        .option('nodes', { type: 'number', describe: 'how many nodes (up)' })
        .option('detach', { type: 'boolean', describe: 'return once the cluster runs (up)' }),
    async (argv) => {
      throw new SidecarError('not_implemented', `"hactl local ${argv.action}" is not built yet`, 501);
    },
  );
