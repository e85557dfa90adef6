/**
 * Mocha global fixture: integration tests run against real servers. With no KAFKA_BROKERS /
 * MONGODB_URI set, the local stack is brought up first (provisioning it on a cold machine) and
 * stopped afterwards if this run started it; a stack that was already up is left as it was.
 */
import { loadConfig } from '../../config/index.ts'
import { stackDown, stackSettings, stackUp } from '../../stack/index.ts'
import { dropPendingDatabases } from './env.ts'

let started = false

export async function mochaGlobalSetup(): Promise<void> {
  const config = loadConfig()
  const settings = stackSettings(config)
  if (settings.services.length === 0) return
  const t0 = Date.now()
  const results = await stackUp(settings, (msg) => process.stdout.write(`  [stack] ${msg}\n`))
  started = results.some((r) => r.action !== 'already running')
  process.stdout.write(`  [stack] ready in ${Date.now() - t0} ms\n`)
}

export async function mochaGlobalTeardown(): Promise<void> {
  await dropPendingDatabases()
  if (!started) return
  const settings = stackSettings(loadConfig())
  await stackDown(settings, (msg) => process.stdout.write(`  [stack] ${msg}\n`))
}
