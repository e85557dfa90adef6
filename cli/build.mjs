/**
 * Builds what `npm start`, `npx distributary` and the Docker image run: the TypeScript sources
 * bundled by esbuild into one ES module, dist/distributary.mjs (with its source map), and run by plain
 * `node`. No TypeScript loader runs beside the platform: `node --import tsx` keeps a loader thread
 * with its own V8 heap (about 30 MB of RSS in every platform process) and transpiles each module at
 * start. The tests run the sources through tsx, and run the CLI from this bundle too
 * (test/helpers/cli.ts), so the shipped form is the tested one.
 *
 * Packages stay external (imported from node_modules at run time, as under tsx); esbuild is also
 * what tsx transpiles with, so the code's semantics are the same. Files read at run time are found
 * from the project root (common/paths.ts), not from a module's location.
 *
 * The bundle is written to a temporary file and renamed, and only when its content changed, so that
 * processes started at the same moment (several workers) never import a half-written file.
 *
 *   node cli/build.mjs [entry.ts outfile.mjs]   (default: cli/main.ts → dist/distributary.mjs)
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const PLATFORM_BUNDLE = path.join(ROOT, 'dist', 'distributary.mjs')

/** Bundles `entry` (a path under the project) into `outfile`; returns `outfile`. */
export async function buildBundle(entry = path.join(ROOT, 'cli', 'main.ts'), outfile = PLATFORM_BUNDLE) {
  const result = await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    sourcesContent: false,
    write: false,
    logLevel: 'warning',
  })
  fs.mkdirSync(path.dirname(outfile), { recursive: true })
  for (const file of result.outputFiles) {
    let same = false
    try {
      same = fs.readFileSync(file.path).equals(file.contents)
    } catch {
      // not built yet
    }
    if (same) continue
    const tmp = `${file.path}.${process.pid}.tmp`
    fs.writeFileSync(tmp, file.contents)
    fs.renameSync(tmp, file.path)
  }
  return outfile
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entry, outfile] = process.argv.slice(2)
  await buildBundle(entry ? path.resolve(entry) : undefined, outfile ? path.resolve(outfile) : undefined)
}
