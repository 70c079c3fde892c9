import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';

const main = join(projectRoot(), 'dist', 'sidecar', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'ha-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = { nodeName: 'n1', address: '127.0.0.19', clusterToken: 'x'.repeat(20), dataDir: join(dir, 'data'), postgres: { enabled: false } };

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

function runWith(config: unknown) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return run(['--config', file]);
}

describe('ha-sidecar start-up and bad input', () => {
  test('--help and --version exit 0', () => {
    expect(run(['--help'])).toMatchObject({ code: 0 });
    expect(run(['--help']).stdout).toContain('--config');
    expect(run(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test('an unknown flag is one clear line and exit 2', () => {
    const r = run(['--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ha-sidecar: usage_error: Unknown argument: bogus/);
  });

  test.each([
    ['a bad value', { ...good, apiPort: 70000 }, /invalid_config: .*apiPort/],
    ['an unknown key', { ...good, leaseTime: 3 }, /invalid_config: .*unknown key leaseTime/],
    ['a nested unknown key', { ...good, timings: { lease: 3, loopwait: 1 } }, /unknown key timings\.loopwait/],
    ['lockDelay not above lease + demoteBudget', { ...good, timings: { lease: 4, lockDelay: 5 } }, /timings\.lockDelay: must exceed lease \+ demoteBudget/],
    ['a short cluster token', { ...good, clusterToken: 'short' }, /clusterToken: at least 16 characters/],
    ['a missing field', { ...good, nodeName: undefined }, /nodeName/],
    ['a file that is not JSON', '{ nodeName: ', /not valid JSON/],
  ])('%s: one line naming the field, exit 2', (_, config, pattern) => {
    const r = runWith(config);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
  });

  test('TLS files that are missing or are no certificate: one line with the code, exit 2, before Consul is asked', () => {
    const missing = runWith({ ...good, tls: { certFile: join(dir, 'n1.crt'), keyFile: join(dir, 'n1.key'), caFile: join(dir, 'ca.crt') } });
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')).toHaveLength(1);
    expect(missing.stderr).toBe(`ha-sidecar: tls_file_unreadable: tls.certFile ${join(dir, 'n1.crt')}: cannot read it (ENOENT)`);
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const invalid = runWith({ ...good, tls: { certFile: garbage, keyFile: garbage, caFile: garbage } });
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toBe(`ha-sidecar: tls_certificate_invalid: tls.certFile ${garbage} holds no PEM certificate`);
    expect(runWith({ ...good, tls: { certFile: garbage } }).stderr).toMatch(/invalid_config: .*tls\.keyFile: .*; tls\.caFile/);
  });

  test('a missing config file: exit 2', () => {
    const r = run(['--config', join(dir, 'nope.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read config file .*ENOENT/);
  });

  test('unreachable Consul at start: one line, exit 1, the API never opened', () => {
    // Nothing listens on 127.0.0.19:8500, so the very first Consul call fails; nothing was registered.
    const r = runWith(good);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ha-sidecar: consul_unavailable: cannot reach Consul at http:\/\/127\.0\.0\.19:8500/);
  });
});
