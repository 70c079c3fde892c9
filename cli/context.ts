import type { Argv } from 'yargs';
import { SidecarError, errorMessage } from '../sidecar/errors.js';
import type { ApiAnswer, ApiRequest, FetchLike, ProfileHandle } from './leader-client.js';
import { DEFAULT_TIMEOUT_MS, callAny, callLeader, expectOk, noteLeader, sendOnce } from './leader-client.js';
import type { Io } from './output.js';
import { processIo } from './output.js';
import type { Profile } from './profiles.js';
import { configDir, currentProfile, managerUrlFor, normalizeManagerUrl, readProfileTls, rememberLeader } from './profiles.js';
import { httpsFetch, type FetchFunction } from '../sidecar/shared/https-fetch.js';

/**
 * What every command gets besides its arguments: where to write, the environment (for
 * `HACTL_CONFIG_DIR`), and the fetch to call managers with. Tests pass their own.
 */
export interface CliContext {
  io: Io;
  env: Record<string, string | undefined>;
  fetch: FetchLike;
}

export const defaultContext = (): CliContext => ({ io: processIo, env: process.env, fetch: globalThis.fetch });

/** Options every command accepts (`--profile`, `--timeout`), as yargs hands them to handlers. */
export interface GlobalArgs {
  profile: string | undefined;
  /** Seconds each manager gets to answer. */
  timeout: number | undefined;
}

/**
 * How a command module plugs into hactl: it adds its command(s) to the yargs instance and returns it.
 * Add one to `commands` in `cli/commands/index.ts`.
 */
export type CommandRegistrar = (cli: Argv<GlobalArgs>, ctx: CliContext) => Argv<GlobalArgs>;

/**
 * Time limit for calls that do real work before answering (start, join, switchover, snapshots): the
 * sidecar answers when the operation is done, which takes a base backup or a replay wait, not a round trip.
 * A manager that is down still fails fast (connection refused, or the connect timeout of fetch).
 */
export const LONG_OPERATION_TIMEOUT_MS = 120_000;

/** The profiles directory for this run. */
export const profilesDir = (ctx: CliContext): string => configDir(ctx.env);

/**
 * One command's view of its profile: calls the leader or any manager with the profile's token and the
 * `--timeout`, and records the leader it finds. A failure to save the leader is a warning, not a failure:
 * the operation itself has already been done.
 */
export class Session implements ProfileHandle {
  private constructor(
    private readonly ctx: CliContext,
    readonly dir: string,
    readonly name: string,
    public profile: Profile,
    /** Per-manager time limit from `--timeout`. */
    readonly timeoutMs: number,
    /** How the managers are called: with the profile's CA (and client certificate) when it has them. */
    readonly fetch: FetchLike,
    /** The same, for the calls that stream a body up or down (snapshots). */
    readonly stream: FetchFunction,
  ) {}

  static async open(ctx: CliContext, args: GlobalArgs): Promise<Session> {
    const dir = profilesDir(ctx);
    const { name, profile } = await currentProfile(dir, args.profile);
    if (profile.managers.length === 0 && profile.lastLeader === undefined) {
      throw new SidecarError('no_managers', `profile "${name}" lists no managers`, 400);
    }
    const tls = profile.tls !== undefined ? readProfileTls(profile.tls) : undefined;
    const stream = httpsFetch(tls);
    return new Session(ctx, dir, name, profile, timeoutMs(args), tls !== undefined ? stream : ctx.fetch, stream);
  }

  /** The longer limit for operations that work before answering; `--timeout` wins when it is longer. */
  get longTimeoutMs(): number {
    return Math.max(this.timeoutMs, LONG_OPERATION_TIMEOUT_MS);
  }

  readonly remember = async (leaderUrl: string): Promise<void> => {
    try {
      await rememberLeader(this.dir, this.name, leaderUrl);
    } catch (e) {
      this.ctx.io.err(`hactl: warning: could not save the leader in profile "${this.name}": ${errorMessage(e)}`);
    }
  };

  /** A leader-only call; an error answer becomes a thrown `SidecarError` with the API's code. */
  async leader(request: ApiRequest): Promise<ApiAnswer> {
    return expectOk(await callLeader(this, request, { fetch: this.fetch, timeoutMs: this.timeoutMs }));
  }

  /**
   * A read-only call any manager can answer, preferring the last known leader. `alsoAsk` adds managers
   * (asked after the last leader, before the profile's others) without changing the profile.
   */
  async any(request: ApiRequest, alsoAsk: string[] = []): Promise<ApiAnswer> {
    const handle: ProfileHandle =
      alsoAsk.length === 0 ? this : { profile: { ...this.profile, managers: [...alsoAsk, ...this.profile.managers] } };
    return expectOk(await callAny(handle, request, { fetch: this.fetch, timeoutMs: this.timeoutMs }));
  }

  /** A call to one given manager (the node a `cluster start` or `join` is about); no search. */
  async direct(managerUrl: string, request: ApiRequest): Promise<ApiAnswer> {
    const manager = normalizeManagerUrl(managerUrl);
    const result = await sendOnce(manager, request, {
      fetch: this.fetch,
      timeoutMs: this.timeoutMs,
      token: this.profile.token,
    });
    if (result.kind !== 'answer') {
      throw new SidecarError('node_unreachable', `${manager} did not answer: ${result.detail}`, 503, { manager });
    }
    return expectOk({ manager, status: result.status, body: result.body, attempts: [] });
  }

  /** A host an operator typed, as a manager URL: `https` for a bare host when the profile has a CA. */
  managerUrl(host: string): string {
    return managerUrlFor(host, this.profile.tls !== undefined);
  }

  /** Records a leader learned from an answer body (e.g. `/cluster`), when it changed. */
  async noteLeader(leaderUrl: string): Promise<void> {
    await noteLeader(this, leaderUrl);
  }
}

/** `--timeout` in milliseconds, the default when not given. */
export const timeoutMs = (args: Pick<GlobalArgs, 'timeout'>): number =>
  args.timeout === undefined ? DEFAULT_TIMEOUT_MS : Math.round(args.timeout * 1000);
