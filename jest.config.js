/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/jest.environment.js',
  globalSetup: '<rootDir>/jest.global-setup.js',
  roots: ['<rootDir>'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  moduleNameMapper: {
    '^@strata/([a-z-]+)$': '<rootDir>/packages/$1/src',
    '^@strata/([a-z-]+)/testing$': '<rootDir>/packages/$1/src/testing',
  },
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.bench/'],
  modulePathIgnorePatterns: ['<rootDir>/packages/[^/]+/dist/'],
  testTimeout: 120000,
};
