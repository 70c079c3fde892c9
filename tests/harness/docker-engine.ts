import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';
import { waitUntil } from '../../cli/local/wait.js';

/**
 * A Docker engine for a test: the one that answers (`docker info` with the caller's DOCKER_HOST), else a
 * dockerd of the test's own, stopped by `stop()` with everything it changed on the host put back.
 *
 * The own engine runs with --iptables=false --ip6tables=false --ip-forward=false --bridge=none: no nft
 * tables, no docker0, no forwarding change, so the network-namespace tests that run in the same `npm test`
 * are not cut off by Docker's FORWARD drop. Published ports still work (docker-proxy on the host connects to
 * the container over the compose network's bridge), and containers on one network reach each other; they
 * have no way out, so an image build there must need no network, as with the stand-ins (docker/stand-in.env).
 * Its data root is a stable cache (HA_DOCKER_CACHE, /var/tmp/ha-sidecar-docker/engine), so built images and
 * layers survive to the next run and a clean clone; sockets and run state live in a temporary directory.
 * With neither, it fails with `docker_engine_unavailable: ...` (docs/development.md "Tests").
 */

export const DOCKER_CACHE = process.env.HA_DOCKER_CACHE ?? '/var/tmp/ha-sidecar-docker';
const DOCKERD = '/usr/sbin/dockerd';
/** The `docker compose` v2 plugin scripts/build-compose.sh builds (keep the version in step): a DOCKER_CONFIG whose cli-plugins/ holds it. */
export const COMPOSE_V2_CONFIG = join(projectRoot(), '.tools/compose/v5.6.0');

/** The one error for "no engine and no way to start one", with a stable code first. */
class DockerEngineUnavailable extends Error {
  constructor(detail: string) {
    super(`docker_engine_unavailable: ${detail}`);
  }
}

export interface DockerEngine {
  /** The environment for docker and docker-compose (DOCKER_HOST). */
  env: NodeJS.ProcessEnv;
  /** True when this test started the engine. */
  own: boolean;
  stop(): Promise<void>;
}

const answers = (env: NodeJS.ProcessEnv) => spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { env, encoding: 'utf8', timeout: 15_000 }).status === 0;

/** The host network state an engine may change, to compare and restore after it stops. */
function hostNetState() {
  const nft = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean);
  const sysctl = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined);
  return { nft, links, ipForward: sysctl('/proc/sys/net/ipv4/ip_forward'), bridgeNfCall: sysctl('/proc/sys/net/bridge/bridge-nf-call-iptables') };
}

/** Puts back what differs from `before`: nft tables, bridge links (docker0, br-*), forwarding, br_netfilter's switch. */
function restoreHostNet(before: ReturnType<typeof hostNetState>): string[] {
  const after = hostNetState();
  const undone: string[] = [];
  // Only what is Docker's: other tests may add tables and links of their own meanwhile.
  for (const table of after.nft.filter((t) => !before.nft.includes(t))) {
    const spec = table.split(' ').slice(1); // "table ip nat" -> ip nat
    if (!spawnSync('nft', ['list', 'table', ...spec], { encoding: 'utf8' }).stdout.includes('DOCKER')) continue;
    spawnSync('nft', ['delete', 'table', ...spec]);
    undone.push(table);
  }
  for (const link of after.links.filter((l) => !before.links.includes(l) && (l === 'docker0' || /^br-[0-9a-f]{12}$/.test(l)))) {
    spawnSync('ip', ['link', 'delete', link]);
    undone.push(`link ${link}`);
  }
  if (before.ipForward !== undefined && after.ipForward !== before.ipForward) {
    writeFileSync('/proc/sys/net/ipv4/ip_forward', before.ipForward);
    undone.push(`net.ipv4.ip_forward=${before.ipForward}`);
  }
  if (after.bridgeNfCall !== before.bridgeNfCall) {
    if (before.bridgeNfCall === undefined) spawnSync('modprobe', ['-r', 'br_netfilter']);
    else writeFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', before.bridgeNfCall);
    undone.push(`bridge-nf-call-iptables ${before.bridgeNfCall ?? '(br_netfilter unloaded)'}`);
  }
  return undone;
}

/** `from` is the caller's environment (DOCKER_HOST) and the dockerd to start; the test of the error sets both. */
export async function dockerEngine(from: { env?: NodeJS.ProcessEnv; dockerd?: string } = {}): Promise<DockerEngine> {
  const callerEnv = from.env ?? process.env;
  const dockerd = from.dockerd ?? DOCKERD;
  if (answers(callerEnv)) return { env: callerEnv, own: false, stop: async () => undefined };
  if (!existsSync(dockerd)) {
    throw new DockerEngineUnavailable(
      `no Docker engine answers (docker info${callerEnv.DOCKER_HOST ? ` at ${callerEnv.DOCKER_HOST}` : ''}) and ${dockerd} is not installed to start one: run npm run setup (installs docker.io), or start an engine`,
    );
  }
  const run = mkdtempSync('/tmp/ha-dockerd-'); // short: containerd's socket path lives under the exec root
  const dataRoot = join(DOCKER_CACHE, 'engine');
  mkdirSync(dataRoot, { recursive: true });
  const env = { ...callerEnv, DOCKER_HOST: `unix://${run}/docker.sock` };
  const before = hostNetState();
  // The pid file beside the data root: a second dockerd on the same data root then refuses to start.
  const args = ['--data-root', dataRoot, '--exec-root', join(run, 'exec'), '--pidfile', join(DOCKER_CACHE, 'dockerd.pid'), '-H', env.DOCKER_HOST];
  args.push('--iptables=false', '--ip6tables=false', '--ip-forward=false', '--bridge=none');
  const logFile = join(run, 'dockerd.log');
  const daemon = spawn('sh', ['-c', `exec "$0" "$@" >"${logFile}" 2>&1`, dockerd, ...args], { stdio: 'ignore', detached: true });
  const exited = new Promise<void>((resolve) => daemon.on('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const stop = async () => {
    if (!gone) {
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    const undone = restoreHostNet(before);
    if (undone.length > 0) console.log(`[docker] restored after the engine: ${undone.join(', ')}`);
    rmSync(run, { recursive: true, force: true });
  };
  try {
    // The guard, not the check, throws on exit: waitUntil takes a check's error for "not yet".
    const guard = () => {
      if (gone) throw new DockerEngineUnavailable(`no Docker engine answers and ${dockerd} exited at start: ${readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ')}`);
    };
    await waitUntil('the own dockerd to answer', () => answers(env), { timeoutMs: 60_000, intervalMs: 500, guard });
  } catch (e) {
    await stop();
    throw e;
  }
  return { env, own: true, stop };
}
