// Lint: ESLint with typescript-eslint, run by `npm test` (npm run lint). Formatting belongs to Prettier
// (.prettierrc.json, `npm run format`); the rules here are about behaviour: a promise nobody awaits or
// catches, a promise handed where a callback's result is ignored, and no line over 120 characters.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const node = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'URL',
    'URLSearchParams',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'clearImmediate',
    'structuredClone',
    'fetch',
    'AbortController',
    'AbortSignal',
    'TextEncoder',
    'TextDecoder',
    'queueMicrotask',
    'performance',
    'globalThis',
    'require',
    'module',
    '__dirname',
    '__filename',
    'exports',
  ].map((name) => [name, 'readonly']),
)

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.stack/**',
      'scratch/**',
      'coverage/**',
      'test-results/**',
      'client/openapi.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: node },
    rules: {
      'max-len': ['error', { code: 120, ignoreUrls: true }],
      // Prettier's layout of a member call on its own line (`stream\n  [Symbol.asyncIterator]()`) is not a hazard
      'no-unexpected-multiline': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // CommonJS on purpose: the mocha reporter and the mapping sandbox's child process
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // chai's assertions are property reads (`expect(x).to.exist`); tests poke at untyped JSON answers
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
)
