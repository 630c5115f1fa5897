module.exports = {
  ...require('../jest.preset.cjs'),
  displayName: 'system',
  rootDir: __dirname,
  globalSetup: '<rootDir>/global-setup.cjs',
  testTimeout: 120000,
};
