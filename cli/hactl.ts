#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SidecarError, errorMessage, isSidecarError } from '../sidecar/errors.js';
import { commands } from './commands/index.js';
import type { CliContext, CommandRegistrar, GlobalArgs } from './context.js';
import { defaultContext } from './context.js';
import type { Io } from './output.js';
import { EXIT, exitCodeFor, failureLine, processIo, usageError } from './output.js';
import { packageVersion } from '../sidecar/shared/package.js';

/**
 * hactl: operates an ha-sidecar cluster. `main(argv)` runs one command and resolves to its exit code
 * (0 done, 1 failed, 2 usage or input error, 3 no reachable leader); every failure is one stderr line
 * `hactl: <code>: <message>`. The process entry at the bottom runs only when this file is the program.
 */

/**
 * The usage line of the command whose parsing failed (`hactl cluster join <leader-host>`), split in
 * words: yargs hands its usage object to the fail callback, and the first line of its help is that
 * command's usage. When it does not have the expected shape, the top-level `hactl`.
 */
function usageWords(usage: unknown): string[] {
  try {
    const help = (usage as { help?: () => unknown }).help?.();
    const words = typeof help === 'string' ? (help.split('\n')[0] ?? '').trim().split(/\s+/) : [];
    if (words[0] === 'hactl') return words;
  } catch {
    /* fall back to the top level */
  }
  return ['hactl'];
}

/** `(run "hactl cluster join --help" for usage)`: the hint appended to every usage error. */
export function helpHint(words: readonly string[]): string {
  const firstPlaceholder = words.findIndex((w) => /^[<[]/.test(w));
  const command = firstPlaceholder < 0 ? words : words.slice(0, firstPlaceholder);
  return `(run "${command.join(' ')} --help" for usage)`;
}

/**
 * Rewrites yargs' messages into what the user typed and needs: `Unknown arguments: bogus-flag, bogusFlag`
 * for `--bogus-flag` becomes `Unknown argument: --bogus-flag` (camel-case echoes dropped, dashes back), and
 * `Not enough non-option arguments: got 0, need at least 1` names the missing `<leader-host>`.
 */
export function cleanUsageMessage(message: string, argv: readonly string[], words: readonly string[] = []): string {
  const missing = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(message);
  if (missing !== null) {
    const required = words.filter((w) => w.startsWith('<'));
    const names = required.slice(Number(missing[1]));
    if (names.length > 0) return `missing argument${names.length === 1 ? '' : 's'}: ${names.join(' ')}`;
    return message;
  }
  const unknown = /^Unknown arguments?: (.*)$/s.exec(message);
  if (unknown === null) return message;
  const names = (unknown[1] ?? '').split(', ').filter((n) => n !== '');
  const kebab = (n: string) => n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const shown = names
    .filter((n) => !(n !== kebab(n) && names.includes(kebab(n))))
    .map((n) => {
      const typed = argv.find((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `--no-${n}`);
      if (typed !== undefined) return typed.split('=')[0] as string;
      if (n.length === 1 && argv.some((a) => /^-[^-]/.test(a) && a.includes(n))) return `-${n}`;
      return n;
    });
  return `Unknown argument${shown.length === 1 ? '' : 's'}: ${shown.join(', ')}`;
}

/**
 * The configured yargs instance for `argv`, with the commands of `registrars` (all of hactl's by
 * default). It never prints or exits by itself: usage errors are thrown as `usage_error` (or the
 * `SidecarError` a coerce threw), and `main` prints them.
 */
function buildCli(
  argv: readonly string[],
  ctx: CliContext = defaultContext(),
  registrars: readonly CommandRegistrar[] = commands,
): Argv<GlobalArgs> {
  // yargs re-wraps an error thrown by a coerce function into a plain message; keep the original to
  // report its own code (bad_value) rather than the generic usage_error.
  let coerceError: SidecarError | undefined;
  const badValue = (message: string): never => {
    coerceError = usageError(message, 'bad_value');
    throw coerceError;
  };
  let cli: Argv<GlobalArgs> = yargs([...argv])
    .scriptName('hactl')
    .usage(
      'hactl <command>\n\n' +
        'Operate an ha-sidecar cluster. Exit codes: 0 done, 1 failed, 2 usage error, 3 no reachable leader,\n' +
        '4 cluster status found the cluster degraded.',
    )
    .option('profile', {
      type: 'string',
      global: true,
      describe: 'profile to use instead of the current one',
      coerce: (v: unknown) => {
        if (typeof v !== 'string' || v.trim() === '') badValue('--profile needs a profile name');
        return v as string;
      },
    })
    .option('timeout', {
      type: 'number',
      global: true,
      describe: 'seconds each manager gets to answer (default 3)',
      coerce: (v: unknown) => {
        if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
          badValue('--timeout needs a positive number of seconds');
        }
        return v as number;
      },
    })
    .exitProcess(false)
    .strict()
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .completion('completion', 'Print a bash/zsh completion script: hactl completion >> ~/.bashrc')
    .demandCommand(1, 'say what to do: profiles, cluster, config, dsn, snapshot, local or completion')
    .fail((message: string | null | undefined, error: Error | null | undefined, usage: unknown) => {
      const words = usageWords(usage);
      const hint = helpHint(words);
      const original = isSidecarError(error) ? error : coerceError?.message === message ? coerceError : undefined;
      if (original !== undefined) {
        throw new SidecarError(original.code, `${original.message} ${hint}`, original.status, original.details);
      }
      const text = message ?? (error ? errorMessage(error) : 'bad usage');
      throw usageError(`${cleanUsageMessage(text, argv, words)} ${hint}`);
    });
  for (const register of registrars) cli = register(cli, ctx);
  return cli;
}

/** Prints the one failure line for `e` and returns its exit code. */
function reportFailure(io: Io, e: unknown): number {
  if (isSidecarError(e)) {
    io.err(failureLine(e.code, e.message));
    return exitCodeFor(e.code);
  }
  io.err(failureLine('internal_error', errorMessage(e)));
  return EXIT.failed;
}

/** Runs one hactl command line (without `node` and the script) and resolves to the exit code. */
export async function main(
  argv: readonly string[],
  ctx: CliContext = defaultContext(),
  registrars: readonly CommandRegistrar[] = commands,
): Promise<number> {
  let output = '';
  try {
    // With a parse callback, yargs hands `--help` and `--version` text over instead of printing it.
    await buildCli(argv, ctx, registrars).parseAsync([...argv], {}, (_error, _args, text) => {
      output = typeof text === 'string' ? text : '';
    });
  } catch (e) {
    return reportFailure(ctx.io, e);
  }
  if (output !== '') ctx.io.out(output);
  return EXIT.ok;
}

/** True when this file is the program node runs (also through an npm bin symlink), not an import. */
function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  // A reader that went away (`hactl cluster status | head -3`, also `2>&1 | head`) ends hactl quietly, as
  // it ends `cat`; any other stdout failure is one failure line, never a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') process.stderr.write(`${failureLine('stdout_failed', errorMessage(e))}\n`);
    process.exit(e.code === 'EPIPE' ? EXIT.ok : EXIT.failed);
  });
  // A closed stderr leaves nowhere to report to: the exit code still says how the command went.
  process.stderr.on('error', () => undefined);
  main(hideBin(process.argv)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      processIo.err(failureLine('internal_error', errorMessage(e)));
      process.exitCode = EXIT.failed;
    },
  );
}
