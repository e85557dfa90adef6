/**
 * One MongoClient (one connection pool) per distinct partner connection string, shared by every
 * subscription that uses that string and closed when the last of them stops: 1,000 subscriptions
 * writing to one partner server open one pool of at most `maxPoolSize` connections, not 1,000.
 *
 * The key is the exact connection string (credentials included: two users of one server are two
 * clients, since a pool authenticates as one user). A client is connected once; concurrent
 * acquirers wait for the same connect. The seed hosts pass the URL guard before the first connect,
 * and every server the driver discovers later (replica set members named by `hello`) is checked
 * too: a refused one disables the sinks on that client (EndpointDisabledError 'url-refused').
 */
import { MongoClient, type MongoClientOptions, type ServerOpeningEvent } from 'mongodb'
import { EndpointDisabledError, SyndicationError, UrlRefusedError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { UrlGuard } from '../../common/url-guard.ts'
import { connectionSecrets, guardConnection, guardHost, parseConnectionString, type ParsedConnection, type SrvResolver } from './connection.ts'
import { classifyMongoError } from './errors.ts'

export interface MongoSinkClientSettings {
  serverSelectionTimeoutMs: number
  connectTimeoutMs: number
  /** 0: no limit. */
  socketTimeoutMs: number
  maxPoolSize: number
}

export const DEFAULT_MONGO_SINK_CLIENT: MongoSinkClientSettings = { serverSelectionTimeoutMs: 10_000, connectTimeoutMs: 10_000, socketTimeoutMs: 30_000, maxPoolSize: 10 }

export interface MongoClientPoolOptions {
  guard: UrlGuard
  logger: Logger
  settings?: Partial<MongoSinkClientSettings>
  appName?: string
  /** SRV resolver for mongodb+srv:// (tests). */
  resolveSrv?: SrvResolver
}

/** A subscription's use of a shared client; `release()` once when the subscription stops. */
export interface MongoLease {
  readonly client: MongoClient
  readonly connection: ParsedConnection
  /** Strings scrubbed from every error message (the connection string, its password). */
  readonly secrets: readonly string[]
  /** Throws when a server the driver discovered was refused by the URL guard; waits for pending checks. */
  ensureSafe(): Promise<void> | void
  release(): Promise<void>
}

interface Entry {
  key: string
  client: MongoClient
  connection: ParsedConnection
  secrets: string[]
  users: number
  ready: Promise<void>
  pendingChecks: Set<Promise<void>>
  refused: SyndicationError | null
}

export class MongoClientPool {
  readonly #entries = new Map<string, Entry>()
  readonly #guard: UrlGuard
  readonly #log: Logger
  readonly #options: MongoClientOptions
  readonly #resolveSrv: SrvResolver | undefined

  constructor(options: MongoClientPoolOptions) {
    const s = { ...DEFAULT_MONGO_SINK_CLIENT, ...options.settings }
    this.#guard = options.guard
    this.#log = options.logger.child({ component: 'mongodb-sink-pool' })
    this.#resolveSrv = options.resolveSrv
    this.#options = {
      serverSelectionTimeoutMS: s.serverSelectionTimeoutMs,
      connectTimeoutMS: s.connectTimeoutMs,
      socketTimeoutMS: s.socketTimeoutMs,
      maxPoolSize: Math.max(1, s.maxPoolSize),
      appName: options.appName ?? 'distributary-sinks',
      // A write is retried by the sink runtime on its own schedule, with the stale-version guard.
      retryWrites: false,
    }
  }

  /** Distinct clients open now (one per connection string in use). */
  get clients(): number {
    return this.#entries.size
  }

  /** Subscriptions using the client of `connectionString` (0: none, no client). */
  users(connectionString: string): number {
    return this.#entries.get(connectionString)?.users ?? 0
  }

  /**
   * The shared, connected client of a connection string. Throws ConfigError (bad string, refused
   * credentials), UrlRefusedError (a host the guard refuses) or RetriableError (server unreachable).
   */
  async acquire(connectionString: string, context: Record<string, unknown> = {}): Promise<MongoLease> {
    let e = this.#entries.get(connectionString)
    if (!e) {
      const connection = parseConnectionString(connectionString, this.#options)
      const client = new MongoClient(connectionString, this.#options)
      const entry: Entry = { key: connectionString, client, connection, secrets: connectionSecrets(connectionString), users: 0, ready: Promise.resolve(), pendingChecks: new Set(), refused: null }
      client.on('serverOpening', (ev: ServerOpeningEvent) => this.#checkDiscovered(entry, ev.address))
      entry.ready = (async () => {
        await guardConnection(connection, this.#guard, this.#resolveSrv)
        await client.connect()
      })()
      entry.ready.catch(() => undefined)
      this.#entries.set(connectionString, (e = entry))
    }
    const entry = e
    entry.users++
    try {
      await entry.ready
    } catch (err) {
      await this.#release(entry)
      throw classifyMongoError(err, 'connect', { ...context, target: entry.connection.display }, entry.secrets)
    }
    let released = false
    return {
      client: entry.client,
      connection: entry.connection,
      secrets: entry.secrets,
      ensureSafe: () => {
        if (entry.pendingChecks.size > 0) return Promise.all(entry.pendingChecks).then(() => this.#throwIfRefused(entry))
        this.#throwIfRefused(entry)
      },
      release: async () => {
        if (released) return
        released = true
        await this.#release(entry)
      },
    }
  }

  #throwIfRefused(entry: Entry): void {
    if (entry.refused) throw entry.refused
  }

  /** A server the driver opens (a seed or one a replica set named): through the guard, once. */
  #checkDiscovered(entry: Entry, address: string): void {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address)
    if (!m) return
    const check: Promise<void> = guardHost(m[1]!, Number(m[2]), this.#guard)
      .catch((err: unknown) => {
        if (!(err instanceof UrlRefusedError)) return // unresolvable now: the driver cannot reach it either
        entry.refused = new EndpointDisabledError('url-refused', `the partner's MongoDB deployment names a server the URL guard refuses: ${err.message}`, { host: m[1], target: entry.connection.display })
        this.#log.error('partner MongoDB names a refused server: its client is closed', { target: entry.connection.display, host: m[1] })
        void entry.client.close().catch(() => undefined)
      })
      .finally(() => entry.pendingChecks.delete(check))
    entry.pendingChecks.add(check)
  }

  async #release(entry: Entry): Promise<void> {
    entry.users--
    if (entry.users > 0) return
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key)
    await entry.client.close().catch((err: unknown) => this.#log.warn('closing a partner MongoDB client failed', { target: entry.connection.display, error: err }))
  }

  /** Closes every client (worker shutdown). */
  async close(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    await Promise.allSettled(entries.map((e) => e.client.close()))
  }
}
