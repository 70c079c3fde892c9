import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layering of the tree, as a rule `npm run lint` enforces (docs/design.md "Parts"). Bottom to top:
 * - base: `sidecar/shared/` (processes, secrets, package metadata) and the files at the root of `sidecar/`
 *   that every part uses (errors, error codes, log, units, metrics, the outgoing-request counter); they import only each other;
 * - parts, one folder each: a part imports base, `config.ts` (the type), and of another part only the
 *   surface listed for it below, never its internals;
 * - the composition root (`config.ts`, `main.ts`, `node.ts`, `participants.ts`, `recovery.ts`) wires the
 *   parts and may import any of them;
 * - `cli/` (hactl) speaks to the sidecar over HTTP: of `sidecar/` it imports base and the types of the
 *   cluster's records only;
 * - nothing in `sidecar/` or `cli/` imports `tests/`, and `sidecar/` imports neither `cli/` nor `examples/`.
 */
const PARTS = ['api', 'consul', 'election', 'guard', 'manager', 'mirror', 'postgres', 'snapshot'];
const COMPOSITION = ['config', 'main', 'node', 'participants', 'recovery'];

/** What a part may import from the other parts (module paths without `.js`). */
const SURFACE = {
  api: ['consul/records', 'consul/store', 'election/decide', 'snapshot/routes', 'snapshot/service'],
  consul: [],
  // The loop's guard is the write guard's client (a type), and the loop is the one user of the Consul store.
  election: ['consul/*', 'guard/client'],
  // The guard fences Postgres: it reads the postmaster's pid file.
  guard: ['postgres/pid-file'],
  manager: ['election/decide', 'election/participant'],
  // Synchronous files: the leader's synchronous list names standbys as Postgres does (pgName).
  mirror: ['election/decide', 'election/participant', 'postgres/quoting'],
  postgres: ['consul/store', 'election/decide', 'election/eligibility', 'election/participant'],
  // A snapshot holds the Postgres database and the mirrored files: it dumps through Postgres's settings and
  // skips the mirror's temporary files; it reads the node's view through the loop.
  snapshot: ['consul/records', 'consul/store', 'election/loop', 'election/participant', 'postgres/settings', 'mirror/paths'],
};

/** The `no-restricted-imports` groups for a file in `sidecar/<part>/`. */
function partGroups(part) {
  const group = [];
  for (const other of PARTS.filter((p) => p !== part)) {
    group.push(`../${other}/*`);
    for (const allowed of SURFACE[part]) if (allowed.startsWith(`${other}/`)) group.push(`!../${allowed}${allowed.endsWith('*') ? '' : '.js'}`);
  }
  group.push(...COMPOSITION.filter((c) => c !== 'config').map((c) => `../${c}.js`));
  return group;
}

const OUTSIDE_SIDECAR = ['**/cli/**', '**/examples/**', '**/tests/**'];
const restrict = (group, message) => ({ 'no-restricted-imports': ['error', { patterns: [{ group, message }] }] });
const LAYERING = 'breaks the layering stated in eslint.config.js (docs/design.md "Parts")';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', '.local-cluster/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['sidecar/shared/**/*.ts'],
    rules: restrict(['../*/**', '!../shared/**', ...COMPOSITION.map((c) => `../${c}.js`), ...OUTSIDE_SIDECAR], `shared code imports only base: it ${LAYERING}`),
  },
  {
    files: ['sidecar/{errors,error-codes,log,units,metrics,outgoing}.ts'],
    rules: restrict(['./*/**', '!./shared/**', ...COMPOSITION.map((c) => `./${c}.js`), ...OUTSIDE_SIDECAR], `base code imports only base: it ${LAYERING}`),
  },
  ...PARTS.map((part) => ({
    files: [`sidecar/${part}/**/*.ts`],
    rules: restrict([...partGroups(part), ...OUTSIDE_SIDECAR], `${part}/ may use only another part's surface: it ${LAYERING}`),
  })),
  {
    files: ['sidecar/*.ts'],
    ignores: ['sidecar/{errors,error-codes,log,units,metrics,outgoing}.ts'],
    rules: restrict(OUTSIDE_SIDECAR, `the sidecar ${LAYERING}`),
  },
  {
    files: ['cli/**/*.ts'],
    rules: restrict(
      ['**/sidecar/*/**', '!**/sidecar/shared/**', '!**/sidecar/consul/records.js', '!**/sidecar/postgres/pid-file.js', ...COMPOSITION.filter((c) => c !== 'config').map((c) => `**/sidecar/${c}.js`), '**/tests/**'],
      `hactl speaks to the sidecar over HTTP: it ${LAYERING}`,
    ),
  },
);
