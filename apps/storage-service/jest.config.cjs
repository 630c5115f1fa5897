module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'storage-service',
  rootDir: __dirname,
  testTimeout: 30000,
};
