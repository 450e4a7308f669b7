// ESLint with typescript-eslint's type-aware recommended rules. Formatting is Prettier's alone
// (eslint-config-prettier, last, turns off every rule that would disagree with it).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // .gitignore'd output, generated files and copies of shipped migrations are not ours to lint.
  { ignores: ['reports/', 'scratch/', '.secventory/', 'migrations/', 'test/fixtures/'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A leading underscore marks a binding kept for its position: a parameter an interface
      // requires, or a field left out of a rest copy (`const { pid: _pid, ...rest } = line`).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // `async` without `await` is how a function keeps a promise-returning contract: Fastify
      // plugins and handlers (a plain function plugin would have to call `done`), fast-check's
      // AsyncCommand.apply, prom-client's collect. Marking them async is the interface, not a slip.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // The JavaScript files (bin/secventory.js, this file) are outside tsconfig.json: no types to check.
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    // Short functions (STYLE.md): the `if`s in the parent, the work in named helpers. Tests and
    // scripts are exempt: a test reads best as one straight story, setup to assertion, and a
    // proof scenario as one sequence of steps, even when that takes more than 70 lines.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 70, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // Tests and scripts read JSON response bodies, SQL rows and log lines whose shape is exactly
    // what they assert; declaring a type for each would restate the assertion without checking
    // anything. In src/ every such value is typed (`query<Row>`, TypeBox schemas), so the rules stay.
    files: ['test/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  prettier,
);
