import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { answeredCode, ERROR_CODES, hactlExitFor, HACTL_EXIT } from '../../sidecar/error-codes.js';

/** Every .ts file under `dir`. */
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

/**
 * Where a code appears as a literal: thrown (`SidecarError('x'`, or one of two by a condition), logged or answered
 * (`code: 'x'`, `error: 'x'`), passed to a usage error or failure line, or used by the file mirror's
 * connection handling (`fail('x'`, `refuse('x'`, its frame errors).
 */
const CODE_PATTERNS = [
  /SidecarError\(\s*'([a-z_]+)'/g,
  /\? '([a-z]+_[a-z_]+)'\s*: '([a-z]+_[a-z_]+)'/g,
  /\b(?:code|error): '([a-z_]+)'/g,
  /usageError\([^;]*, '([a-z_]+)'\)/g,
  /failureLine\('([a-z_]+)'/g,
  /\b(?:fail|refuse)\('([a-z_]+)'/g,
  /'(frame_[a-z_]+)'/g,
];
/** zod's issue code in refinements, not one of ours. */
const NOT_OURS = new Set(['custom']);

describe('error codes: one table', () => {
  test('every code literal in sidecar/ and cli/ is in the table', () => {
    const found = new Set<string>();
    const missing: string[] = [];
    for (const file of [...sources('sidecar'), ...sources('cli')]) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of CODE_PATTERNS) {
        for (const match of text.matchAll(pattern)) {
          for (const code of match.slice(1)) {
            if (code === undefined || NOT_OURS.has(code)) continue;
            found.add(code);
            if (!(code in ERROR_CODES)) missing.push(`${file}: ${code}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
    // The scan reaches every kind of use: one code found by each pattern.
    const samples = ['postgres_no_data', 'listen_failed', 'postgres_exited', 'bad_request', 'no_profile', 'stdout_failed', 'leader_silent', 'stale_term', 'frame_truncated'];
    expect(samples.filter((c) => !found.has(c))).toEqual([]);
    expect(found.size).toBeGreaterThan(100);
  });

  test('one line per code in alphabetical order, so additions on parallel branches merge as added lines', () => {
    const names = Object.keys(ERROR_CODES);
    expect(names).toEqual([...names].sort());
    const table = readFileSync('sidecar/error-codes.ts', 'utf8');
    for (const name of names) expect(table).toMatch(new RegExp(`^  ${name}: \\{ exit: \\w+, meaning: .*\\},$`, 'm'));
  });

  test("hactl's exit codes: usage 2, no reachable leader 3, degraded 4, everything else 1", () => {
    const byExit = (exit: number) => Object.entries(ERROR_CODES).filter(([, info]) => info.exit === exit).map(([name]) => name);
    expect(byExit(HACTL_EXIT.usage)).toEqual(['bad_host', 'bad_value', 'no_profile', 'snapshot_checksum_mismatch', 'snapshot_invalid', 'snapshot_newer_version', 'tls_ca_mismatch', 'tls_files_missing', 'unknown_profile', 'unknown_snapshot', 'usage_error']);
    expect(byExit(HACTL_EXIT.noLeader)).toEqual(['no_leader', 'no_reachable_leader', 'no_reachable_manager']);
    expect(byExit(HACTL_EXIT.degraded)).toEqual(['cluster_degraded']);
    expect(hactlExitFor('consul_acl_denied')).toBe(HACTL_EXIT.failed);
  });

  test('a code answered by a newer server, or http_<status>, is kept as received and exits 1', () => {
    expect(hactlExitFor(answeredCode('brand_new_code'))).toBe(HACTL_EXIT.failed);
    expect(hactlExitFor(answeredCode('http_502'))).toBe(HACTL_EXIT.failed);
    expect(hactlExitFor(answeredCode('no_leader'))).toBe(HACTL_EXIT.noLeader);
  });

  test('docs/error-codes.md lists exactly the table', () => {
    const section = readFileSync('docs/error-codes.md', 'utf8');
    const listed = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(listed).toEqual(Object.keys(ERROR_CODES));
  });
});
