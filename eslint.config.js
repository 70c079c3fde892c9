import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * What a file may import: the layering of the tree, which `npm run lint` checks (docs/design.md "Parts").
 * A wrong arrow fails lint with the message of the rule it breaks. Inside `sidecar/`, bottom to top:
 *
 * 1. Base: `sidecar/shared/` (child processes, secrets, package metadata, certificates, the HTTPS fetch, pg) and
 *    the root files every part uses (errors, error-codes, log, units, metrics, outgoing). Base imports only base.
 * 2. Parts, one folder each (PARTS). A part imports base, its own folder, the config's type (`config.ts`), and
 *    of another part only the files SURFACE lists for it, each with its reason. Never another part's internals.
 * 3. The composition root (COMPOSITION: `config.ts`, `main.ts`, `node.ts`, `participants.ts`, `peer-reachability.ts`,
 *    `recovery.ts`)
 *    builds each part from its slice of the config and wires them; it may import any part.
 *
 * Outside `sidecar/`:
 * - `cli/` (hactl) talks to the sidecar over HTTP. Of `sidecar/` it imports base, the KV records' types
 *   (`consul/records`) and the postmaster's pid file (`postgres/pid-file`, for `hactl local`'s process list).
 * - `examples/` (the sample manager, an application of its own) imports of `sidecar/` only `shared/`.
 * - Nothing imports `tests/`; `sidecar/` imports neither `cli/` nor `examples/`. Tests may import anything.
 */
const PARTS = ['api', 'consul', 'election', 'guard', 'manager', 'mirror', 'postgres', 'snapshot'];
const COMPOSITION = ['config', 'main', 'node', 'participants', 'peer-reachability', 'recovery'];

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
    files: ['examples/**/*.ts'],
    rules: restrict(['**/sidecar/*.js', '**/sidecar/*/**', '!**/sidecar/shared/**', '**/cli/**', '**/tests/**'], `the sample manager is an application of its own: it ${LAYERING}`),
  },
  {
    // pg's own entry point runs a Cloudflare Workers probe that loads undici (sidecar/shared/pg.ts).
    files: ['sidecar/**/*.ts', 'cli/**/*.ts', 'examples/**/*.ts'],
    ignores: ['sidecar/shared/pg.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: [{ name: 'pg', allowTypeImports: true, message: "import pg's values from sidecar/shared/pg.ts, which loads pg without its Cloudflare probe (undici, about 6 MB)" }] },
      ],
    },
  },
  {
    files: ['cli/**/*.ts'],
    rules: restrict(
      ['**/sidecar/*/**', '!**/sidecar/shared/**', '!**/sidecar/consul/records.js', '!**/sidecar/postgres/pid-file.js', ...COMPOSITION.filter((c) => c !== 'config').map((c) => `**/sidecar/${c}.js`), '**/tests/**'],
      `hactl speaks to the sidecar over HTTP: it ${LAYERING}`,
    ),
  },
);
