#!/usr/bin/env node
// `npx distributary ...` and `npm start`: builds the platform bundle from the sources
// (cli/build.mjs: esbuild, about 0.2 s, in a process of its own so that nothing of esbuild stays in
// this one) and runs it with plain node, no TypeScript loader beside it. Source maps are on, so stack
// traces name the .ts files and lines.
import { execFileSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'

execFileSync(process.execPath, [fileURLToPath(new URL('./build.mjs', import.meta.url))], { stdio: 'inherit' })
process.setSourceMapsEnabled(true)
await import(pathToFileURL(fileURLToPath(new URL('../dist/distributary.mjs', import.meta.url))).href)
