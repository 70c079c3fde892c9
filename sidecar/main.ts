#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig } from './config.js';
import { errorMessage, isSidecarError } from './errors.js';
import { createLogger, type LogContext } from './log.js';
import { Metrics } from './metrics.js';
import { SidecarNode } from './node.js';
import { buildParticipants } from './participants.js';
import { packageVersion } from './shared/package.js';

/** `ha-sidecar --config FILE`: runs one node's sidecar until SIGTERM/SIGINT. Exit 2 on bad config or usage. */
async function main(): Promise<number> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('ha-sidecar')
    .usage('$0 --config FILE\n\nRuns the ha-sidecar of one node (HA_SIDECAR_* environment variables override the file).')
    .option('config', { alias: 'c', type: 'string', describe: 'JSON config file', requiresArg: true })
    .version(packageVersion())
    .strict()
    .fail((msg, err) => {
      throw new UsageError(msg || errorMessage(err));
    })
    .help()
    .parseAsync();

  const config = loadConfig(args.config);
  const context: LogContext = { node: config.nodeName, role: 'starting', term: 0 };
  const log = createLogger(context, config.logLevel);
  const metrics = new Metrics(config.nodeName);
  const node = new SidecarNode(config, log, context, buildParticipants(config, log, metrics), metrics);
  await node.start();

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await node.stop();
  log.info('stopped');
  return 0;
}

class UsageError extends Error {}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`ha-sidecar: usage_error: ${e.message} (see ha-sidecar --help)\n`);
      process.exit(2);
    }
    const code = isSidecarError(e) ? e.code : 'startup_failed';
    process.stderr.write(`ha-sidecar: ${code}: ${errorMessage(e)}\n`);
    process.exit(code === 'invalid_config' ? 2 : 1);
  },
);
