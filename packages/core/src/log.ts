import { type Logger, pino } from 'pino';

/**
 * Library logging: silent unless the application opts in, either with
 * `setLogger` (its own pino instance) or the SPECSTREAM_LOG_LEVEL variable.
 * Each package asks for a child logger so lines say where they came from.
 */
let root: Logger = pino({ level: process.env.SPECSTREAM_LOG_LEVEL ?? 'silent', name: 'specstream' });
const children = new Map<string, Logger>();

export function setLogger(logger: Logger): void {
  root = logger;
  children.clear();
}

export function getLogger(pkg: string): Logger {
  let child = children.get(pkg);
  if (child === undefined) {
    child = root.child({ pkg });
    children.set(pkg, child);
  }
  return child;
}

export type { Logger };
