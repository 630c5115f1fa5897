// `npm test` runs every project's tests; `npx nx test <project>` runs one.
module.exports = {
  projects: ['<rootDir>/libs/*/jest.config.cjs', '<rootDir>/apps/*/jest.config.cjs', '<rootDir>/test/jest.config.cjs'],
  // Two cores: system tests start many processes; keep the unit suites from starving them.
  maxWorkers: 2,
  // testTimeout is a global option: the projects' own values apply only when a project runs alone. Under
  // load (two cores shared by up to a dozen processes) 5 s is too short for process and scrypt tests.
  testTimeout: 60000,
};
