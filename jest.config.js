/** Jest runs the TypeScript sources as native ESM through ts-jest (node --experimental-vm-modules). */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  // Integration tests start real Consul and PostgreSQL clusters; each file sets its own budget too.
  testTimeout: 120_000,
  verbose: true,
};
