// The partition fault suite is not yet stable enough for CI (2 of its 7 tests each failed once in about six
// runs: convergence after healing and a put through connections reset every few MiB, both bounded by the
// HTTP/2 keepalive on black-holed streams). It runs with `npm run test:partition` (or
// VAULT_TEST_PARTITION=1 npm test) until that is fixed.
const partition = process.env.VAULT_TEST_PARTITION === '1';

module.exports = {
  ...require('../jest.preset.cjs'),
  displayName: 'system',
  rootDir: __dirname,
  globalSetup: '<rootDir>/global-setup.cjs',
  testTimeout: 120000,
  ...(partition ? {} : { testPathIgnorePatterns: ['/node_modules/', '/faults-partition\\.spec\\.ts$'] }),
};
