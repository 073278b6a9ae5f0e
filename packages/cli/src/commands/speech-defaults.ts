import { fileURLToPath } from 'node:url';

/**
 * The shipped speech synthesizer at the repository root; src/commands and dist/commands are both
 * two levels below packages/cli, so the same relative path serves the sources and the build.
 * (Its own module: both `speak` and `generate --speak` name it, and neither loads the other.)
 */
export const DEFAULT_SPEECH_SYNTHESIZER = fileURLToPath(
  new URL('../../../../models/specstream-speech-synthesizer', import.meta.url),
);
