#!/usr/bin/env node
// `npx distributary ...` and `npm start`: builds the platform bundle from the sources
// (cli/build.mjs: esbuild, about 0.2 s, in a process of its own so that nothing of esbuild stays in
// this one) and runs it with plain node, no TypeScript loader beside it. Source maps are on, so stack
// traces name the .ts files and lines.
//
// esbuild is a dev dependency: where only the production dependencies are installed (`npm ci
// --omit=dev`, as in the Docker image's runtime stage), the bundle already built (dist/) runs as it is.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'

const bundle = fileURLToPath(new URL('../dist/distributary.mjs', import.meta.url))
let canBuild = true
try {
  createRequire(import.meta.url).resolve('esbuild')
} catch {
  canBuild = false
}
if (canBuild) {
  execFileSync(process.execPath, [fileURLToPath(new URL('./build.mjs', import.meta.url))], { stdio: 'inherit' })
} else if (!fs.existsSync(bundle)) {
  process.stderr.write(
    'distributary: dist/distributary.mjs is not built, and esbuild (a dev ' +
      'dependency) is not installed to build it: run `npm ci && npm run build` ' +
      'first\n',
  )
  process.exit(1)
}
process.setSourceMapsEnabled(true)
await import(pathToFileURL(bundle).href)
