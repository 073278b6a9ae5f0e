import { fileURLToPath } from 'node:url';

/** The shipped pair at the repository root. */
export const SHIPPED_TARGET = fileURLToPath(
  new URL('../../../models/specstream-docs-target', import.meta.url),
);
export const SHIPPED_DRAFT = fileURLToPath(new URL('../../../models/specstream-docs-draft', import.meta.url));

/** Prompts in the shipped pair's domain (the Python documentation), of different lengths. */
export const TEXTS = [
  'The list data type has some more methods. Here are all of the methods of list objects:',
  'Dictionaries are sometimes found in other languages as',
  'The for statement in Python differs a bit from what you may be used to in C or Pascal.',
  'Strings can be concatenated (glued together) with the + operator, and repeated with *:',
  'A tuple consists of a number of values separated by commas, for instance:',
  'Python',
];
