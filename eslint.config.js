// Lint runs in `npm test`. Type-aware rules are left to `tsc`; these catch the
// mistakes tsc lets through (floating promises are handled by review and tests).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/build/**', '**/dist/**', '.test-tmp/**', '.stores/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      // One private-member style: ECMAScript #names (enforced at run time, and
      // nothing for type stripping to rewrite), never TypeScript's `private`.
      'no-restricted-syntax': [
        'error',
        {
          selector:
            ':matches(PropertyDefinition, MethodDefinition[kind!="constructor"], TSAbstractPropertyDefinition)[accessibility="private"]',
          message: 'Use an ECMAScript private name (#field) instead of the TypeScript `private` modifier.',
        },
        {
          selector: 'TSParameterProperty',
          message: 'Declare the field and assign it in the constructor (parameter properties are not erasable syntax).',
        },
      ],
    },
  },
);
