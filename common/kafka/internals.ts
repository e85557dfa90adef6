/**
 * kafkajs' internal modules (kafkajs/src/...) for the patches that replace one of their methods
 * (encoder.ts, timeouts.ts): given only by the kafkajs version the patches were written for, so that
 * another version is left as it is.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const PATCHED_VERSION = '2.2.4'

/** The kafkajs module at `path` (e.g. 'kafkajs/src/protocol/encoder.js'), or undefined from another kafkajs. */
export function patchableKafkajsModule<T>(path: string): T | undefined {
  const version = (require('kafkajs/package.json') as { version: string }).version
  if (version !== PATCHED_VERSION) return undefined
  return require(path) as T
}
