module.exports = {
  ...require('../../jest.preset.cjs'),
  displayName: 'peer-node',
  rootDir: __dirname,
  testTimeout: 30000,
};
