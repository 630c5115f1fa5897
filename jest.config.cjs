// `npm test` runs every project's tests; `npx nx test <project>` runs one.
module.exports = {
  projects: ['<rootDir>/libs/*/jest.config.cjs', '<rootDir>/apps/*/jest.config.cjs', '<rootDir>/test/jest.config.cjs'],
  // Two cores: system tests start many processes; keep the unit suites from starving them.
  maxWorkers: 2,
};
