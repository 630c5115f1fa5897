module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'crypto-service',
  rootDir: __dirname,
  testTimeout: 30000,
};
