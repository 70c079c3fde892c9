import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { derivedConsulSecrets } from '../../cli/local/driver.js';
import { consulBinary } from '../../cli/local/paths.js';
import { initClusterTls } from '../../cli/tls.js';
import { COMPOSE_V2_CONFIG, dockerEngine } from '../harness/docker-engine.js';
import { projectRoot } from '../../sidecar/shared/package.js';
import { loadConfig } from '../../sidecar/config.js';

/**
 * The Docker files, checked without a Docker engine: docker-compose.yml through Debian's `docker-compose
 * config` and the same file through `docker compose config` (v2, the plugin scripts/build-compose.sh
 * builds), the entrypoint's rendering of consul-config/ through the real Consul's `validate`, the sidecar
 * config it writes through the sidecar's own validation, and both HAProxy configs through `haproxy -c`.
 * TLS everywhere, as the local cluster: the tls-init service, Consul's tls.hcl, encrypt.hcl and acl.hcl with
 * secrets derived from the cluster token, the sidecar's tls section, hactl's https profile, HAProxy's checks.
 * Last, the tests' Docker engine when none answers and none can be started: one error with a stable code.
 */

const root = projectRoot();
const DOCKER_COMPOSE = '/usr/bin/docker-compose';
const HAPROXY = '/usr/sbin/haproxy';
const NODES = ['n1', 'n2', 'n3'];
/** docs/design.md "Ports". */
const PORTS = { raft: 8300, gossip: 8301, consulHttp: 8500, consulHttps: 8501, api: 8008, postgres: 15432, mirror: 22000 };
/** Where the nodes read the cluster CA and their certificates (the tls volume, docker/entrypoint.sh). */
const TLS_DIR = '/etc/ha-sidecar/tls';

const dir = mkdtempSync(join(tmpdir(), 'ha-compose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const read = (path: string) => readFileSync(join(root, path), 'utf8');

function run(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(command, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: opts.env ?? process.env, input: opts.input });
  if (r.error) throw r.error;
  return r;
}

interface ComposeService {
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  image?: string;
  hostname?: string;
  environment?: Record<string, string>;
  expose?: string[];
  ports?: string[];
  networks?: Record<string, { ipv4_address?: string }>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown>;
  command?: string[];
  restart?: string;
  network_mode?: string;
  profiles?: string[];
  entrypoint?: string[];
}
interface Compose {
  services: Record<string, ComposeService>;
  networks: Record<string, { ipam?: { config?: { subnet: string }[] } }>;
  volumes: Record<string, unknown>;
}

/** The environment without the variables docker-compose.yml reads, so its defaults show. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HA_') && !k.startsWith('COMPOSE_')));
  return { ...env, ...extra };
}

/** A cluster token for `docker-compose config` (docker-compose.yml requires one). */
const TOKEN = 'a-real-cluster-token-0123456789';

/** `docker-compose config` (interpolated, normalised), as an object. */
function composeConfig(extraEnv: Record<string, string> = {}, envFile?: string): { result: SpawnSyncReturns<string>; compose: Compose } {
  const files = ['-f', join(root, 'docker-compose.yml'), '--project-directory', root, ...(envFile ? ['--env-file', join(root, envFile)] : [])];
  const result = run(DOCKER_COMPOSE, [...files, 'config'], { env: cleanEnv({ HA_CLUSTER_TOKEN: TOKEN, ...extraEnv }) });
  if (result.status !== 0) return { result, compose: { services: {}, networks: {}, volumes: {} } };
  // docker-compose 1.29 prints YAML only and the project has no YAML parser; the PyYAML it runs on does.
  const json = run('/usr/bin/python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: result.stdout });
  expect(json.stderr).toBe('');
  return { result, compose: JSON.parse(json.stdout) as Compose };
}

/** What `docker compose config --format json` (v2) prints of a service; it spells ports, volumes and durations out. */
interface ComposeV2Service extends Omit<ComposeService, 'ports' | 'volumes' | 'healthcheck'> {
  ports?: { host_ip?: string; published: string; target: number; protocol: string }[];
  volumes?: { type: string; source: string; target: string; read_only?: boolean }[];
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
  [key: string]: unknown;
}

/**
 * `docker compose config` through the docker client with the plugin scripts/build-compose.sh builds; with the
 * tools profile, which v2 leaves out of `config` otherwise (1.29 lists every service).
 */
function composeV2Config(extraEnv: Record<string, string> = {}, envFile?: string): { result: SpawnSyncReturns<string>; services: Record<string, ComposeV2Service> } {
  const files = ['-f', join(root, 'docker-compose.yml'), '--project-directory', root, ...(envFile ? ['--env-file', join(root, envFile)] : [])];
  const env = cleanEnv({ DOCKER_CONFIG: COMPOSE_V2_CONFIG, HA_CLUSTER_TOKEN: TOKEN, ...extraEnv });
  const result = run('docker', ['compose', ...files, '--profile', 'tools', 'config', '--format', 'json'], { env });
  return { result, services: result.status === 0 ? (JSON.parse(result.stdout) as { services: Record<string, ComposeV2Service> }).services : {} };
}

const ipOf = (s: ComposeService) => Object.values(s.networks ?? {})[0]?.ipv4_address ?? '';
const portSet = (list: string[] = []) => new Set(list.map((p) => (p.includes('/') ? p : `${p}/tcp`)));
/** "127.0.0.1:8500:8500/tcp" -> { host: '127.0.0.1', published: 8500, target: 8500 } */
function published(spec: string) {
  const m = /^(?:(.+):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new Error(`unexpected port spec ${spec}`);
  return { host: m[1] ?? '', published: Number(m[2]), target: Number(m[3]) };
}

/** HAProxy config as sections ("backend postgres_leader" -> its lines), comments dropped. */
function haproxySections(text: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (/^\S/.test(line)) sections.set(line.trim(), (current = []));
    else current.push(line.trim().replace(/\s+/g, ' '));
  }
  return sections;
}

/** `haproxy -c`: exit 0, and no warning other than the ones `allowed` matches. */
function expectHaproxyValid(file: string, allowed?: RegExp) {
  const r = run(HAPROXY, ['-c', '-f', file]);
  const out = r.stdout + r.stderr;
  expect({ status: r.status, out }).toEqual({ status: 0, out: expect.stringContaining('Configuration file is valid') });
  const warnings = out.split('\n').filter((l) => /\[(WARNING|ALERT)\]/.test(l));
  expect(warnings.filter((l) => !allowed?.test(l))).toEqual([]);
}

const { result: composeResult, compose } = composeConfig();
/** A CA and the three nodes' certificates as the tls-init service makes them, for Consul's validate and haproxy -c. */
const tlsDir = join(dir, 'tls');
beforeAll(() => initClusterTls(tlsDir, 'main', NODES.map((name, i) => ({ name, address: `172.28.0.${11 + i}` }))));
const nodes = NODES.map((name) => ({ name, service: compose.services[name] ?? {} }));

describe('docker-compose.yml', () => {
  test('validates with docker-compose config, without warnings', () => {
    expect(composeResult.stderr).toBe('');
    expect(composeResult.status).toBe(0);
  });

  test('three manager nodes from one image built by docker/Dockerfile, HAProxy, the one-shot tls-init, and the tls-rotate tool', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['haproxy', ...NODES, 'tls-init', 'tls-rotate']);
    for (const { name, service } of nodes) {
      expect(service.build).toMatchObject({ context: root, dockerfile: 'docker/Dockerfile' });
      expect(service.image).toBe(nodes[0].service.image);
      expect(service.hostname).toBe(name);
      expect(service.environment?.HA_SIDECAR_NODE_NAME).toBe(name);
    }
    expect(compose.services.haproxy.image).toMatch(/^haproxy:2\.\d+/);
  });

  test('tls-init: the same image makes the certificates of every node (name=IP) into the tls volume, the CA key into tls-ca; every node starts after it succeeded', () => {
    const init = compose.services['tls-init'];
    expect(init.build).toEqual(nodes[0].service.build);
    expect(init.image).toBe(nodes[0].service.image);
    expect(init.command).toEqual(['tls-init']);
    expect(init.restart).toBe('no');
    expect(init.network_mode).toBe('none');
    expect([...(init.volumes ?? [])].sort()).toEqual(['tls-ca:/var/lib/ha-tls-ca:rw', `tls:${TLS_DIR}:rw`]);
    expect(init.environment?.HA_TLS_NODES.split(' ')).toEqual(nodes.map(({ name, service }) => `${name}=${ipOf(service)}`));
    for (const { service } of nodes) {
      expect(service.depends_on).toEqual({ 'tls-init': { condition: 'service_completed_successfully' } });
      expect(service.volumes).toContain(`tls:${TLS_DIR}:ro`);
      expect(service.volumes?.some((v) => v.startsWith('tls-ca:'))).toBe(false);
    }
    expect(compose.services.haproxy.volumes?.some((v) => v.startsWith('tls-ca:'))).toBe(false);
  });

  test('tls-rotate: a tool (profile "tools", not started by up) on the cluster network with both tls volumes, whose arguments go to tls rotate', () => {
    const rotate = compose.services['tls-rotate'];
    expect(rotate.image).toBe(nodes[0].service.image);
    expect(rotate.profiles).toEqual(['tools']);
    expect(rotate.entrypoint).toEqual(['/usr/bin/tini', '--', '/usr/local/bin/ha-sidecar-entrypoint', 'tls-rotate']);
    expect(rotate.command).toBeUndefined();
    expect(rotate.restart).toBe('no');
    expect(Object.keys(rotate.networks ?? {})).toEqual(['ha']);
    expect([...(rotate.volumes ?? [])].sort()).toEqual(['tls-ca:/var/lib/ha-tls-ca:rw', `tls:${TLS_DIR}:rw`]);
    expect(rotate.environment?.HA_TLS_NODES).toBe(compose.services['tls-init'].environment?.HA_TLS_NODES);
    expect(rotate.environment?.HA_SIDECAR_CLUSTER_TOKEN).toBe(nodes[0].service.environment?.HA_SIDECAR_CLUSTER_TOKEN);
  });

  test('every node exposes the production ports (Consul raft, gossip tcp+udp, HTTPS, API, Postgres, mirror)', () => {
    const expected = new Set([`${PORTS.raft}/tcp`, `${PORTS.gossip}/tcp`, `${PORTS.gossip}/udp`, `${PORTS.consulHttps}/tcp`, `${PORTS.api}/tcp`, `${PORTS.postgres}/tcp`, `${PORTS.mirror}/tcp`]);
    for (const { service } of nodes) expect(portSet(service.expose)).toEqual(expected);
    // The image declares the same ports.
    const exposeLine = /^EXPOSE (.+)$/m.exec(read('docker/Dockerfile'))?.[1] ?? '';
    expect(portSet(exposeLine.split(/\s+/))).toEqual(expected);
  });

  test('fixed, distinct IPs inside the cluster network; the Consul server list is exactly those IPs', () => {
    const ips = nodes.map(({ service }) => ipOf(service));
    expect(new Set(ips).size).toBe(3);
    const subnet = compose.networks.ha.ipam?.config?.[0]?.subnet ?? '';
    expect(subnet).toBe('172.28.0.0/24');
    for (const [i, { service }] of nodes.entries()) {
      expect(ips[i]).toMatch(/^172\.28\.0\.\d+$/);
      expect(service.environment?.HA_SIDECAR_ADDRESS).toBe(ips[i]);
      expect(service.environment?.CONSUL_SERVERS.split(/[\s,]+/).sort()).toEqual([...ips].sort());
    }
    const haproxyIp = ipOf(compose.services.haproxy);
    expect(haproxyIp).toMatch(/^172\.28\.0\.\d+$/);
    expect(ips).not.toContain(haproxyIp);
  });

  test("every node's named volumes are its own, for the sidecar's data, its files and Consul's data; the certificates are shared, read-only", () => {
    const all: string[] = [];
    for (const { service } of nodes) {
      const mounts = Object.fromEntries((service.volumes ?? []).filter((v) => v !== `tls:${TLS_DIR}:ro`).map((v) => v.split(':')).map(([source, target]) => [target, source]));
      expect(Object.keys(mounts).sort()).toEqual(['/var/lib/consul', '/var/lib/ha-files', '/var/lib/ha-sidecar']);
      for (const source of Object.values(mounts)) expect(Object.keys(compose.volumes)).toContain(source);
      all.push(...Object.values(mounts));
    }
    expect(new Set(all).size).toBe(all.length);
  });

  test('HAProxy starts once every node is healthy', () => {
    expect(compose.services.haproxy.depends_on).toEqual(Object.fromEntries(NODES.map((n) => [n, { condition: 'service_healthy' }])));
  });

  test('each node is health-checked on its API /health over HTTPS (port 8008, its own address, the cluster CA)', () => {
    for (const { service } of nodes) {
      const check = (service.healthcheck?.test ?? []).join(' ');
      expect(check).toContain("require('node:https')");
      expect(check).toContain(`port: ${PORTS.api}, path: '/health'`);
      expect(check).toContain('host: process.env.HA_SIDECAR_ADDRESS');
      expect(check).toContain(`readFileSync('${TLS_DIR}/ca.crt')`);
    }
  });

  test('one cluster token for all nodes, HA_CLUSTER_TOKEN; without it one clear error (no default anyone knows)', () => {
    const tokens = new Set(nodes.map(({ service }) => service.environment?.HA_SIDECAR_CLUSTER_TOKEN));
    expect([...tokens]).toEqual([TOKEN]);
    const { result } = composeConfig({ HA_CLUSTER_TOKEN: '' });
    expect(result.status).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/: set HA_CLUSTER_TOKEN to 16\+ characters, in the environment or in \.\/\.env \(README Docker\)$/)]);
  });

  test('the images the Dockerfile starts from: the official ones by default (the Dockerfile\'s own ARG defaults), the stand-ins with docker/stand-in.env', () => {
    const argDefault = (name: string) => new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(read('docker/Dockerfile'))?.[1];
    expect(argDefault('NODE_IMAGE')).toBe('node:20-bookworm-slim');
    expect(argDefault('CONSUL_BUILD_IMAGE')).toBe('golang:${GO_VERSION}');
    for (const { service } of nodes) {
      expect(service.build?.args).toEqual({ NODE_IMAGE: 'node:20-bookworm-slim', CONSUL_BUILD_IMAGE: `golang:${argDefault('GO_VERSION')}` });
    }
    expect(compose.services.haproxy.image).toBe('haproxy:2.8');
    const { result, compose: standIn } = composeConfig({}, 'docker/stand-in.env');
    expect(result.status).toBe(0);
    const script = read('scripts/docker-stand-ins.sh');
    for (const name of NODES) {
      const args = standIn.services[name].build?.args ?? {};
      expect(args).toEqual({ NODE_IMAGE: 'ha-sidecar-node:local', CONSUL_BUILD_IMAGE: 'ha-sidecar-consul-build:local' });
      for (const image of Object.values(args)) expect(script).toContain(image);
    }
    expect(standIn.services.haproxy.image).toBe('ha-sidecar-base:bookworm');
    expect(script).toContain('BASE_IMAGE=ha-sidecar-base:bookworm');
  });

  test("each node publishes its API on 8001-8003, n1 also Consul's HTTPS/UI port; HAProxy publishes Postgres 5432, the API 8008 and stats 8404", () => {
    expect((nodes[0].service.ports ?? []).map(published)).toEqual([
      { host: '127.0.0.1', published: 8001, target: PORTS.api },
      { host: '127.0.0.1', published: PORTS.consulHttps, target: PORTS.consulHttps },
    ]);
    expect((nodes[1].service.ports ?? []).map(published)).toEqual([{ host: '127.0.0.1', published: 8002, target: PORTS.api }]);
    expect((nodes[2].service.ports ?? []).map(published)).toEqual([{ host: '127.0.0.1', published: 8003, target: PORTS.api }]);
    const haproxyPorts = (compose.services.haproxy.ports ?? []).map(published);
    expect(haproxyPorts.map((p) => [p.published, p.target])).toEqual([
      [5432, 5432],
      [8008, 8008],
      [8404, 8404],
    ]);
    // Loopback unless asked otherwise: the stats page and the Consul UI have no login.
    expect(new Set(haproxyPorts.map((p) => p.host))).toEqual(new Set(['127.0.0.1']));
    const { compose: open } = composeConfig({ HA_BIND_ADDR: '0.0.0.0' });
    expect(open.services.haproxy.ports?.map((p) => published(p).host)).toEqual(['0.0.0.0', '0.0.0.0', '0.0.0.0']);
  });

  test('HAProxy runs docker/haproxy.cfg with the tls volume where its ca-base is, and that file binds the ports it publishes', () => {
    expect(compose.services.haproxy.volumes).toContain(`${join(root, 'docker/haproxy.cfg')}:/usr/local/etc/haproxy/haproxy.cfg:ro`);
    const caBase = haproxySections(read('docker/haproxy.cfg')).get('global')?.find((l) => l.startsWith('ca-base '))?.split(' ')[1];
    expect(compose.services.haproxy.volumes).toContain(`tls:${caBase}:ro`);
    const sections = haproxySections(read('docker/haproxy.cfg'));
    const binds = [...sections.values()].flat().filter((l) => l.startsWith('bind ')).map((l) => Number(l.split(':').pop()));
    expect(binds.sort()).toEqual((compose.services.haproxy.ports ?? []).map((p) => published(p).target).sort());
  });
});

describe('docker-compose.yml under docker compose v2 (v5.6.0, scripts/build-compose.sh)', () => {
  /** Go durations as both CLIs print them ("1m", "1m0s", "30s") in seconds. */
  const secondsOf = (d: string) => [...d.matchAll(/(\d+)([hms])/g)].reduce((s, [, n, u]) => s + Number(n) * { h: 3600, m: 60, s: 1 }[u as 'h' | 'm' | 's'], 0);
  /** What a service is, in one spelling for both CLIs' normalised output. */
  const v1View = (s: ComposeService & Record<string, unknown>) => ({
    ...s,
    ports: (s.ports ?? []).map(published),
    volumes: (s.volumes ?? []).map((v) => v.split(':').slice(0, 2)),
    healthcheck: s.healthcheck && { ...s.healthcheck, start_period: secondsOf(String((s.healthcheck as Record<string, unknown>).start_period)) },
    depends_on: s.depends_on,
  });
  const v2View = (s: ComposeV2Service) => ({
    ...Object.fromEntries(Object.entries(s).filter(([, v]) => v !== null)),
    ports: (s.ports ?? []).map((p) => ({ host: p.host_ip ?? '', published: Number(p.published), target: p.target })),
    volumes: (s.volumes ?? []).map((v) => [v.source, v.target]),
    healthcheck: s.healthcheck && { ...s.healthcheck, start_period: secondsOf(s.healthcheck.start_period) },
    depends_on: s.depends_on && Object.fromEntries(Object.entries(s.depends_on).map(([k, v]) => [k, { condition: (v as { condition: string }).condition }])),
  });

  test('the plugin is built (npm run setup) and the docker client finds it in DOCKER_CONFIG', () => {
    expect(existsSync(join(COMPOSE_V2_CONFIG, 'cli-plugins/docker-compose'))).toBe(true);
    const version = run('docker', ['compose', 'version'], { env: cleanEnv({ DOCKER_CONFIG: COMPOSE_V2_CONFIG }) });
    expect(version.stdout.trim()).toBe('Docker Compose version v5.6.0');
  });

  test('validates without warnings, and reads every service as docker-compose 1.29 does', () => {
    const { result, services } = composeV2Config();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(Object.keys(services).sort()).toEqual(Object.keys(compose.services).sort());
    for (const name of Object.keys(compose.services)) {
      const v1 = v1View(compose.services[name] as ComposeService & Record<string, unknown>);
      const v2 = v2View(services[name]);
      expect({ name, ...v2 }).toEqual({ name, ...v1 });
    }
  });

  test('with docker/stand-in.env: the stand-in images', () => {
    const { result, services } = composeV2Config({}, 'docker/stand-in.env');
    expect(result.status).toBe(0);
    for (const name of NODES) expect(services[name].build?.args).toEqual({ NODE_IMAGE: 'ha-sidecar-node:local', CONSUL_BUILD_IMAGE: 'ha-sidecar-consul-build:local' });
    expect(services.haproxy.image).toBe('ha-sidecar-base:bookworm');
  });

  test('without HA_CLUSTER_TOKEN it refuses; every line it prints names the variable and the fix (one per place the file uses it)', () => {
    const { result } = composeV2Config({ HA_CLUSTER_TOKEN: '' });
    expect(result.status).not.toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/: required variable HA_CLUSTER_TOKEN is missing a value: set HA_CLUSTER_TOKEN to 16\+ characters, in the environment or in \.\/\.env \(README Docker\)$/);
  });
});

describe('the node image renders consul-config/ (the same templates as the local cluster)', () => {
  const dockerfile = read('docker/Dockerfile');
  const entrypoint = read('docker/entrypoint.sh');

  test('the Dockerfile builds Consul with scripts/build-consul.sh and copies consul-config where the entrypoint reads it', () => {
    expect(dockerfile).toMatch(/^FROM \$\{CONSUL_BUILD_IMAGE\} AS consul$/m);
    expect(dockerfile).toMatch(/^RUN bash scripts\/build-consul\.sh/m);
    expect(dockerfile).not.toMatch(/CONSUL_VERSION/); // the version is the script's pin, not a second one
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\}$/m);
    expect(dockerfile).toMatch(/postgresql-15/);
    expect(dockerfile).toMatch(/gettext-base/);
    const workdir = /^WORKDIR (\S+)$/m.exec(dockerfile.slice(dockerfile.indexOf('FROM ${NODE_IMAGE}')))?.[1];
    expect(dockerfile).toMatch(/^COPY consul-config consul-config$/m);
    expect(entrypoint).toContain(`ROOT="\${HA_SIDECAR_HOME:-${workdir}}"`);
    expect(entrypoint).toContain('TEMPLATE_DIR="${HA_TEMPLATE_DIR:-$ROOT/consul-config}"');
    expect(dockerfile).toMatch(/^COPY docker\/entrypoint\.sh \/usr\/local\/bin\/ha-sidecar-entrypoint$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \[.*"\/usr\/local\/bin\/ha-sidecar-entrypoint"\]$/m);
    // The sidecar is exec'd in the foreground with the config file the brief names.
    expect(entrypoint).toMatch(/^exec .*node "\$ROOT\/dist\/sidecar\/main\.js" --config "\$SIDECAR_CONFIG"$/m);
    expect(entrypoint).toContain('SIDECAR_CONFIG="${HA_SIDECAR_CONFIG:-/etc/ha-sidecar/sidecar.json}"');
  });

  /** Runs `entrypoint.sh render` for one compose node into a scratch directory (the compiled dist/cli/container.js of `npm run build`). */
  function render(service: ComposeService, extra: Record<string, string> = {}) {
    const out = mkdtempSync(join(dir, 'render-'));
    const env = {
      PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
      ...service.environment,
      HA_SIDECAR_HOME: root,
      HA_TLS_DIR: tlsDir,
      HA_TEMPLATE_DIR: join(root, 'consul-config'),
      CONSUL_CONFIG_DIR: join(out, 'consul.d'),
      HA_SIDECAR_CONFIG: join(out, 'sidecar.json'),
      ...extra,
    };
    const r = run('bash', [join(root, 'docker/entrypoint.sh'), 'render'], { env });
    return { r, out, env, consulDir: join(out, 'consul.d'), file: (name: string) => readFileSync(join(out, name), 'utf8') };
  }

  test.each(NODES)("%s: server.hcl from the template with the node's compose values; the real Consul accepts it", (name) => {
    const service = compose.services[name];
    const ips = nodes.map((n) => ipOf(n.service));
    const { r, consulDir, file } = render(service);
    expect(r.stderr).toMatch(/rendered/);
    expect(r.status).toBe(0);
    const hcl = file('consul.d/server.hcl');
    expect(hcl).not.toContain('${');
    // The template, line by line, with this node's values (so nothing is added or lost on the way).
    const expected = read('consul-config/server.hcl.tmpl')
      .replace('${NODE_NAME}', name)
      .replace('${DATACENTER}', 'dc1')
      .replace('${DATA_DIR}', '/var/lib/consul')
      .replace('${BOOTSTRAP_EXPECT}', '3')
      .replaceAll('${BIND_ADDR}', ipOf(service))
      .replace('${CLIENT_ADDR}', `${ipOf(service)} 127.0.0.1`)
      .replace('${RETRY_JOIN}', JSON.stringify(ips.filter((ip) => ip !== ipOf(service))));
    expect(hcl).toBe(expected);
    // The ports the compose file exposes and publishes are the template's.
    expect(/^\s*server\s*=\s*(\d+)/m.exec(hcl)?.[1]).toBe(String(PORTS.raft));
    expect(/^\s*serf_lan\s*=\s*(\d+)/m.exec(hcl)?.[1]).toBe(String(PORTS.gossip));
    expect(/^\s*http\s*=\s*(\d+)/m.exec(hcl)?.[1]).toBe(String(PORTS.consulHttp));
    // TLS, gossip encryption and ACLs, always; tls.hcl closes 8500 and opens 8501 (it loads after server.hcl).
    expect(file('consul.d/tls.hcl')).toBe(
      read('consul-config/tls.hcl.tmpl').replace('${TLS_CA_FILE}', join(tlsDir, 'ca.crt')).replace('${TLS_CERT_FILE}', join(tlsDir, `${name}.crt`)).replace('${TLS_KEY_FILE}', join(tlsDir, `${name}.key`)),
    );
    expect(file('consul.d/tls.hcl')).toMatch(new RegExp(`^\\s*http\\s*=\\s*-1\\n\\s*https\\s*=\\s*${PORTS.consulHttps}$`, 'm'));
    expect(existsSync(join(consulDir, 'encrypt.hcl'))).toBe(true);
    expect(existsSync(join(consulDir, 'acl.hcl'))).toBe(true);
    const validate = run(consulBinary(), ['validate', consulDir]);
    expect({ status: validate.status, out: validate.stdout }).toEqual({ status: 0, out: expect.stringContaining('Configuration is valid') });
  });

  test("encrypt.hcl and acl.hcl hold the gossip key and management token the local cluster derives from the cluster token; 0640, and Consul accepts them", () => {
    const { gossipKey, aclManagementToken } = derivedConsulSecrets(TOKEN);
    const { r, consulDir, file, out } = render(compose.services.n2);
    expect(r.status).toBe(0);
    // The template aligns its `=` signs: compare with the spaces folded.
    expect(file('consul.d/encrypt.hcl').split('\n').map((l) => l.replace(/ +/g, ' '))).toContain(`encrypt = "${gossipKey}"`);
    expect(file('consul.d/acl.hcl')).toContain(`initial_management = "${aclManagementToken}"`);
    for (const secret of ['encrypt.hcl', 'acl.hcl']) expect(statSync(join(consulDir, secret)).mode & 0o777).toBe(0o640);
    expect(file('sidecar-policy.hcl')).toContain('key_prefix "ha-sidecar/main/"');
    // The `consul` command's token file and the node's certificate under the names the image's CONSUL_* name.
    expect(file('consul-management.token')).toBe(`${aclManagementToken}\n`);
    expect(statSync(join(out, 'consul-management.token')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, 'node.crt'), 'utf8')).toBe(readFileSync(join(tlsDir, 'n2.crt'), 'utf8'));
    expect(run(consulBinary(), ['validate', consulDir]).status).toBe(0);
  });

  test("the sidecar config it writes, with the node's environment, passes the sidecar's own validation", () => {
    const service = compose.services.n3;
    const { r, out, env } = render(service);
    expect(r.status).toBe(0);
    const raw = JSON.parse(readFileSync(join(out, 'sidecar.json'), 'utf8')) as Record<string, unknown>;
    expect(raw).not.toHaveProperty('clusterToken'); // the secret stays in the environment
    const config = loadConfig(join(out, 'sidecar.json'), env);
    expect(config).toMatchObject({
      nodeName: 'n3',
      clusterName: 'main',
      address: ipOf(service),
      apiPort: PORTS.api,
      clusterToken: service.environment?.HA_SIDECAR_CLUSTER_TOKEN,
      dataDir: '/var/lib/ha-sidecar',
      consul: { url: `https://${ipOf(service)}:${PORTS.consulHttps}` },
      postgres: { enabled: true, port: PORTS.postgres, binDir: '/usr/lib/postgresql/15/bin' },
      tls: { caFile: join(tlsDir, 'ca.crt'), certFile: join(tlsDir, 'n3.crt'), keyFile: join(tlsDir, 'n3.key'), verifyClient: true },
      apiUrl: `https://${ipOf(service)}:${PORTS.api}`,
    });
  });

  test("hactl's profile: every node's API over HTTPS, the CA and n1's certificate, the cluster token, 0600, current (so `exec n1 hactl` needs no setup)", () => {
    const service = compose.services.n1;
    const { r } = render(service, { HACTL_CONFIG_DIR: join(dir, 'hactl-n1') });
    expect(r.status).toBe(0);
    const file = join(dir, 'hactl-n1', 'profiles.json');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      current: 'main',
      profiles: {
        main: {
          managers: nodes.map((n) => `https://${ipOf(n.service)}:${PORTS.api}`),
          token: TOKEN,
          tls: { caFile: join(tlsDir, 'ca.crt'), certFile: join(tlsDir, 'n1.crt'), keyFile: join(tlsDir, 'n1.key') },
        },
      },
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test('a server list without the node itself, or a missing node name, is one clear error', () => {
    const lonely = render(compose.services.n1, { CONSUL_SERVERS: '172.28.0.12 172.28.0.13' });
    expect(lonely.r.status).toBe(1);
    expect(lonely.r.stderr.trim()).toBe('[entrypoint] error: CONSUL_SERVERS (172.28.0.12 172.28.0.13) does not include HA_SIDECAR_ADDRESS (172.28.0.11)');
    const nameless = render(compose.services.n1, { HA_SIDECAR_NODE_NAME: '' });
    expect(nameless.r.status).not.toBe(0);
    expect(nameless.r.stderr).toMatch(/HA_SIDECAR_NODE_NAME/);
  });
});

describe('HAProxy configs: clients reach only the node whose GET /leader answers 200', () => {
  /** Postgres' backend checks each node's /leader (a client's refused connection brings the check forward); the others track its checks. */
  const expectLeaderOnly = (sections: Map<string, string[]>, servers: Record<string, string>, backend: string, port: number) => {
    const lines = sections.get(`backend ${backend}`) ?? [];
    const checked = backend === 'postgres_leader';
    const serverLine = (name: string, host: string) =>
      `server ${name} ${host}:${port} ${checked ? `check port ${PORTS.api} observe layer4 error-limit 1 on-error fastinter` : `track postgres_leader/${name}`}`;
    expect(lines).toEqual(expect.arrayContaining([...(checked ? ['option httpchk GET /leader', 'http-check expect status 200'] : []), ...Object.entries(servers).map(([name, host]) => serverLine(name, host))]));
    expect(lines.filter((l) => l.startsWith('server '))).toHaveLength(Object.keys(servers).length);
  };
  /** The settings both files must share, from their defaults sections. */
  const checkSettings = (sections: Map<string, string[]>) => {
    const defaults = sections.get('defaults') ?? [];
    const server = (defaults.find((l) => l.startsWith('default-server ')) ?? '').split(' ');
    const value = (k: string) => server[server.indexOf(k) + 1];
    return {
      mode: defaults.includes('mode tcp'),
      retries: defaults.find((l) => l.startsWith('retries ')),
      inter: value('inter'),
      fastinter: value('fastinter'),
      downinter: value('downinter'),
      fall: value('fall'),
      rise: value('rise'),
      onMarkedDown: value('on-marked-down'),
    };
  };

  const dockerCfg = haproxySections(read('docker/haproxy.cfg'));
  const localText = read('docker/haproxy-local.cfg.tmpl');
  const localCfg = haproxySections(localText);

  test('docker/haproxy.cfg passes haproxy -c with a CA where its ca-base is (the only warnings: n1-n3 do not resolve outside compose)', () => {
    const text = read('docker/haproxy.cfg');
    const caBase = /^\s*ca-base (\S+)$/m.exec(text)?.[1] ?? '';
    const file = join(mkdtempSync(join(dir, 'haproxy-')), 'haproxy.cfg');
    writeFileSync(file, text.replace(`ca-base ${caBase}`, `ca-base ${tlsDir}`));
    expectHaproxyValid(file, /could not resolve address 'n[123]'/);
  });

  test('docker/haproxy.cfg: Postgres and the API go to the compose nodes by name, checked on /leader', () => {
    const servers = Object.fromEntries(NODES.map((n) => [n, n]));
    expectLeaderOnly(dockerCfg, servers, 'postgres_leader', PORTS.postgres);
    expectLeaderOnly(dockerCfg, servers, 'api_leader', PORTS.api);
    expect(checkSettings(dockerCfg)).toEqual({ mode: true, retries: 'retries 0', inter: '1s', fastinter: '100ms', downinter: '250ms', fall: '2', rise: '2', onMarkedDown: 'shutdown-sessions' });
    // The checks speak HTTPS and verify the sidecar's certificate with the cluster CA; the traffic passes through.
    expect(dockerCfg.get('defaults')?.find((l) => l.startsWith('default-server'))).toMatch(/ check-ssl verify required ca-file ca\.crt$/);
    expect([...dockerCfg.values()].flat().filter((l) => / ssl( |$)/.test(l))).toEqual([]);
    // A node name that does not resolve (yet) must not stop HAProxy.
    expect(dockerCfg.get('defaults')?.find((l) => l.startsWith('default-server'))).toMatch(/init-addr last,libc,none resolvers docker/);
    expect(dockerCfg.get('resolvers docker')).toContain('nameserver dns 127.0.0.11:53');
    expect(dockerCfg.get('listen stats')).toEqual(expect.arrayContaining(['bind :8404', 'stats enable']));
  });

  test('docker/haproxy-local.cfg.tmpl, rendered, passes haproxy -c without warnings', () => {
    expect([...new Set(localText.match(/\$\{[A-Z_]+\}/g))]).toEqual(['${RUN_DIR}', '${API_CHECK_TLS}']);
    const file = join(mkdtempSync(join(dir, 'haproxy-')), 'haproxy-local.cfg');
    const rendered = run('envsubst', ['${RUN_DIR} ${API_CHECK_TLS}'], { input: localText, env: { ...process.env, RUN_DIR: dirname(file), API_CHECK_TLS: '' } });
    expect(rendered.status).toBe(0);
    expect(rendered.stdout).toContain(`stats socket ${dirname(file)}/haproxy.sock`);
    writeFileSync(file, rendered.stdout);
    expectHaproxyValid(file);
  });

  test('docker/haproxy-local.cfg.tmpl: 127.0.0.10 in front of 127.0.0.11-13, the same checks as the Docker one', () => {
    const servers = { n1: '127.0.0.11', n2: '127.0.0.12', n3: '127.0.0.13' };
    expectLeaderOnly(localCfg, servers, 'postgres_leader', PORTS.postgres);
    expectLeaderOnly(localCfg, servers, 'api_leader', PORTS.api);
    expect(localCfg.get('frontend postgres')).toContain('bind 127.0.0.10:5432');
    expect(localCfg.get('frontend api')).toContain('bind 127.0.0.10:8008');
    expectLeaderOnly(localCfg, servers, 'manager_leader', 8080); // the sample manager (examples/manager)
    expect(localCfg.get('frontend manager')).toContain('bind 127.0.0.10:8080');
    expect(localCfg.get('listen stats')).toContain('bind 127.0.0.10:8404');
    expect(checkSettings(localCfg)).toEqual(checkSettings(dockerCfg));
  });
});

describe("the tests' Docker engine (tests/harness/docker-engine.ts) when none answers and none can be started", () => {
  const dead = () => ({ ...process.env, DOCKER_HOST: `unix://${join(mkdtempSync(join(dir, 'engine-')), 'docker.sock')}` });

  test('no dockerd installed: one error with the stable code docker_engine_unavailable, naming the socket and the fix', async () => {
    const env = dead();
    await expect(dockerEngine({ env, dockerd: join(dir, 'no-such-dockerd') })).rejects.toThrow(
      `docker_engine_unavailable: no Docker engine answers (docker info at ${env.DOCKER_HOST}) and ${join(dir, 'no-such-dockerd')} is not installed to start one: run npm run setup (installs docker.io), or start an engine`,
    );
  });

  test('a dockerd that exits at start: the same code, not a timeout of the wait for it to answer', async () => {
    await expect(dockerEngine({ env: dead(), dockerd: '/bin/false' })).rejects.toThrow(/^docker_engine_unavailable: no Docker engine answers and \/bin\/false exited at start/);
  });
});
