/**
 * Where the project lives, whether this module runs from its source file (common/paths.ts, through
 * tsx in tests) or from the platform's bundle (dist/, built by cli/build.mjs): the nearest directory
 * above it that holds package.json. Files the platform reads at run time (schemas/avro, stack/ferretdb,
 * the default .stack/) are found from here, never from a module's own location.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

export const PROJECT_ROOT = findProjectRoot(path.dirname(fileURLToPath(import.meta.url)))
