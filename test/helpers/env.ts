/**
 * What integration tests connect to: the same configuration the platform uses, so that setting
 * KAFKA_BROKERS / MONGODB_URI runs the suite against external servers.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import net from 'node:net'
import { createMongoClient } from '../../common/clients.ts'
import { createKafka } from '../../common/kafka/index.ts'
import { generateKeyRingEntry } from '../../common/secret-box.ts'
import { loadConfig, type AppConfig } from '../../config/index.ts'

export function testConfig(): AppConfig {
  return loadConfig()
}

export function testKafka(clientId = `test-${randomUUID().slice(0, 8)}`) {
  return createKafka(testConfig(), undefined, clientId)
}

export function testMongo() {
  return createMongoClient(testConfig())
}

/** `test-<what>-<uuid>`: unique per test, so tests never see each other's data. */
export function uniqueName(what: string): string {
  return `test-${what}-${randomUUID()}`
}

export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string | (() => string | Promise<string>) } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000)
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      const what = typeof opts.what === 'function' ? await opts.what() : opts.what
      throw new Error(`timed out waiting for ${what ?? 'condition'}${last ? `: ${String(last)}` : ''}`)
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100))
  }
}

/**
 * Test databases are dropped once, after the whole run, not while other tests still work: FerretDB
 * v1 (SQLite) crashed with SIGBUS when a database file was dropped while a late write (a worker's
 * last lease pass) still reached it, and then refused to start on the half-dropped file.
 */
const pendingDrops = new Set<string>()

export function dropDatabaseLater(name: string): void {
  pendingDrops.add(name)
}

export async function dropPendingDatabases(): Promise<void> {
  if (pendingDrops.size === 0) return
  const client = testMongo()
  try {
    await client.connect()
    for (const name of [...pendingDrops]) {
      await client
        .db(name)
        .dropDatabase()
        .catch(() => undefined)
      pendingDrops.delete(name)
    }
  } catch {
    /* the store is gone: nothing to clean */
  } finally {
    await client.close().catch(() => undefined)
  }
}

/**
 * A platform configuration for one test suite: ephemeral HTTP and registry ports, a database of its
 * own (dropped after the run), a bootstrap admin key and a secrets key, webhooks allowed to 127.0.0.1.
 * `env`: the environment to read the other settings from (default: this process's).
 */
export function testPlatformConfig(
  what: string,
  env?: NodeJS.ProcessEnv,
): { config: AppConfig; dbName: string; adminKey: string } {
  const dbName = uniqueName(what).slice(0, 60)
  const adminKey = randomBytes(32).toString('base64url')
  // A platform of its own per test, on free ports: the environment's HTTP and registry addresses (which
  // convict would put above the overrides) are for the operator's platform, not for these.
  const own = { ...(env ?? process.env) }
  for (const name of ['HTTP_HOST', 'HTTP_PORT', 'SCHEMA_REGISTRY_HOST', 'SCHEMA_REGISTRY_PORT']) delete own[name]
  const config = loadConfig({
    env: own,
    overrides: {
      http: { host: '127.0.0.1', port: 0 },
      schemaRegistry: { port: 0 },
      mongodb: { database: dbName },
      management: { adminApiKey: adminKey },
      secrets: { encryptionKeys: generateKeyRingEntry(`k${randomBytes(3).toString('hex')}`) },
      urlGuard: { allowlist: '127.0.0.1' },
    },
  })
  dropDatabaseLater(dbName)
  return { config, dbName, adminKey }
}

/** `count` consecutive TCP ports that nothing listens on at 127.0.0.1 now; returns the first. */
export async function freePortRange(count: number): Promise<number> {
  const bindable = (port: number) =>
    new Promise<boolean>((resolve) => {
      const srv = net.createServer()
      srv.once('error', () => resolve(false))
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
    })
  for (let attempt = 0; attempt < 100; attempt++) {
    // below Linux's ephemeral range (32768+), where outgoing connections would take ports meanwhile
    const first = 20_000 + Math.floor(Math.random() * (12_000 - count))
    let free = true
    for (let p = first; p < first + count && free; p++) free = await bindable(p)
    if (free) return first
  }
  throw new Error(`no ${count} consecutive free ports found`)
}
