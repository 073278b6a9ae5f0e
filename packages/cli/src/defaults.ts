import { fileURLToPath } from 'node:url';

// The shipped pair sits at the repository root; src/ and dist/ are both one level below
// packages/cli, so the same relative path serves the sources and the build.
export const DEFAULT_TARGET = fileURLToPath(
  new URL('../../../models/specstream-docs-target', import.meta.url),
);
export const DEFAULT_DRAFT = fileURLToPath(new URL('../../../models/specstream-docs-draft', import.meta.url));

/**
 * The shipped pair is trained on the Python 3.11 documentation: the tutorial's opening of "More
 * on Lists". Its second sentence matters: with the first alone the pair wandered off into an
 * index of dunder methods, with both it lists list's methods.
 */
export const DEFAULT_PROMPT =
  'The list data type has some more methods. Here are all of the methods of list objects:';

export const DEFAULT_MAX_NEW_TOKENS = 128;
