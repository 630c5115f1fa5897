// Shared Jest settings: @swc/jest with decorator metadata (Nest needs it in tests), path aliases mapped
// by hand because @swc/jest does not read tsconfig paths.
const path = require('node:path');
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper: {
    '^@distri-vault/shared$': path.join(__dirname, 'libs/shared/src/index.ts'),
    '^@distri-vault/shared/(.*)$': path.join(__dirname, 'libs/shared/src/$1'),
  },
  testMatch: ['**/*.spec.ts'],
};
