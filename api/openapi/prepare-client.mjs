/**
 * package.json's `prepare` script, which npm runs at the end of `npm ci` and `npm install`: writes the
 * typed client's types, client/openapi.d.ts, which are generated and not committed (git-ignored), so
 * that a fresh clone type-checks after `npm ci`. It runs the generator `npm run client` runs
 * (write-client.ts, under tsx).
 *
 * A production install (`npm ci --omit=dev`) has neither tsx nor openapi-typescript, both dev
 * dependencies, and needs no types (the bundle the platform runs has them erased): there it writes
 * nothing and succeeds.
 */
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
try {
  require.resolve('tsx')
  require.resolve('openapi-typescript')
} catch {
  process.stdout.write('client/openapi.d.ts not written: no dev dependencies (tsx, openapi-typescript)\n')
  process.exit(0)
}
const generator = fileURLToPath(new URL('./write-client.ts', import.meta.url))
const run = spawnSync(process.execPath, ['--import', 'tsx', generator], { stdio: 'inherit' })
process.exit(run.status ?? 1)
