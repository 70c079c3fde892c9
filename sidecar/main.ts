#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from './config.js';
import { errorMessage, isSidecarError } from './errors.js';
import { createLogger, type LogContext } from './log.js';
import { Metrics } from './metrics.js';
import { SidecarNode } from './node.js';
import { buildParticipants } from './participants.js';
import { loadTlsMaterial } from './shared/certificates.js';
import { PeerFetch } from './shared/https-fetch.js';
import { packageVersion } from './shared/package.js';

/** `ha-sidecar --config FILE`: runs one node's sidecar until SIGTERM/SIGINT. Exit 2 on bad config (its TLS files included, and a failed TLS handshake with Consul) or usage. */
async function main(): Promise<number> {
  const args = parseCommandLine(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }

  const config = loadConfig(args.config);
  const context: LogContext = { node: config.nodeName, role: 'starting', term: 0 };
  const log = createLogger(context, config.logLevel);
  // Read and checked before anything starts: a wrong file fails the start with one line (shared/certificates.ts).
  const tls = config.tls ? loadTlsMaterial(config.tls) : undefined;
  const transport = { tls, peers: new PeerFetch(tls) };
  const metrics = new Metrics(config.nodeName);
  const node = new SidecarNode(config, log, context, buildParticipants(config, log, metrics, transport.peers.fetch), transport, metrics);
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

const USAGE = `ha-sidecar --config FILE

Runs the ha-sidecar of one node (HA_SIDECAR_* environment variables override the file).

Options:
  -c, --config   JSON config file
      --help     Show help
      --version  Show version number
`;

/**
 * The command line, by node:util's parseArgs rather than yargs: three flags do not need a package that costs
 * every sidecar about 6 MB of memory for as long as it runs. Unknown flags and arguments are usage errors.
 */
function parseCommandLine(argv: string[]): { config?: string; help?: boolean; version?: boolean } {
  try {
    return parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean' }, version: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    const code = (e as { code?: string }).code;
    const unknown = /^Unknown option '-{1,2}([^']*)'|^Unexpected argument '([^']*)'/.exec(errorMessage(e));
    if (unknown) throw new UsageError(`Unknown argument: ${unknown[1] ?? unknown[2]}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError('Not enough arguments following: config');
    throw new UsageError(errorMessage(e));
  }
}

/**
 * Start failures that are the operator's input (the config and the files it names, and a TLS handshake with
 * Consul that those files or consul.url make fail): exit 2, as for usage.
 */
const BAD_INPUT = new Set(['invalid_config', 'tls_file_unreadable', 'tls_certificate_invalid', 'tls_certificate_expired', 'consul_tls_failed']);

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`ha-sidecar: usage_error: ${e.message} (see ha-sidecar --help)\n`);
      process.exit(2);
    }
    const code = isSidecarError(e) ? e.code : 'startup_failed';
    process.stderr.write(`ha-sidecar: ${code}: ${errorMessage(e)}\n`);
    process.exit(BAD_INPUT.has(code) ? 2 : 1);
  },
);
