/**
 * One MongoClient (one connection pool) per distinct partner connection string, shared by every
 * subscription that uses that string and closed when the last of them stops: 1,000 subscriptions
 * writing to one partner server open one pool of at most `maxPoolSize` connections, not 1,000.
 *
 * The key is the exact connection string (credentials included: two users of one server are two
 * clients, since a pool authenticates as one user). A client is connected once; concurrent
 * acquirers wait for the same connect. Every connection of the client is pinned to the URL guard
 * (guardedMongoClient in connection.ts: seeds, SRV targets, servers a replica set names, reconnects):
 * a host refused when the client connects fails the acquire (UrlRefusedError); one refused later
 * (DNS changed, a member added) disables the sinks on that client (EndpointDisabledError
 * 'url-refused'). A host that does not resolve is retriable, like an unreachable server.
 */
import type { MongoClient, MongoClientOptions } from 'mongodb'
import { EndpointDisabledError, UrlRefusedError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import type { UrlGuard } from '../../common/url-guard.ts'
import { connectionSecrets, guardedMongoClient, type ParsedConnection } from './connection.ts'
import { classifyMongoError } from './errors.ts'

export interface MongoSinkClientSettings {
  serverSelectionTimeoutMs: number
  connectTimeoutMs: number
  /** 0: no limit. */
  socketTimeoutMs: number
  maxPoolSize: number
}

export const DEFAULT_MONGO_SINK_CLIENT: MongoSinkClientSettings = {
  serverSelectionTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  socketTimeoutMs: 30_000,
  maxPoolSize: 10,
}

export interface MongoClientPoolOptions {
  guard: UrlGuard
  logger: Logger
  settings?: Partial<MongoSinkClientSettings>
  appName?: string
}

/** A subscription's use of a shared client; `release()` once when the subscription stops. */
export interface MongoLease {
  readonly client: MongoClient
  readonly connection: ParsedConnection
  /** Strings scrubbed from every error message (the connection string, its password). */
  readonly secrets: readonly string[]
  /** Throws EndpointDisabledError('url-refused') once the URL guard refused a host the client was to connect to. */
  ensureSafe(): void
  release(): Promise<void>
}

interface Entry {
  key: string
  client: MongoClient
  connection: ParsedConnection
  secrets: string[]
  users: number
  ready: Promise<void>
  refusal: () => UrlRefusedError | null
}

export class MongoClientPool {
  readonly #entries = new Map<string, Entry>()
  readonly #guard: UrlGuard
  readonly #log: Logger
  readonly #options: MongoClientOptions

  constructor(options: MongoClientPoolOptions) {
    const s = { ...DEFAULT_MONGO_SINK_CLIENT, ...options.settings }
    this.#guard = options.guard
    this.#log = options.logger.child({ component: 'mongodb-sink-pool' })
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
    // a client the guard refused stays closed for its leases; a new acquire asks the guard afresh
    if (e?.refusal()) {
      this.#entries.delete(connectionString)
      e = undefined
    }
    if (!e) {
      const onRefused = (err: UrlRefusedError) =>
        this.#log.error('the URL guard refused a host of a partner MongoDB: its client is closed', {
          target: guarded.connection.display,
          host: err.context.host,
          reason: err.context.reason,
        })
      const guarded = guardedMongoClient(connectionString, this.#options, this.#guard, onRefused)
      const { client, connection, refusal } = guarded
      const entry: Entry = {
        key: connectionString,
        client,
        connection,
        secrets: connectionSecrets(connectionString),
        users: 0,
        ready: Promise.resolve(),
        refusal,
      }
      // a refusal while connecting closes the client: the connect fails with it, not with "topology closed"
      entry.ready = client.connect().then(
        () => {
          const r = refusal()
          if (r) throw r
        },
        (err: unknown) => {
          throw refusal() ?? err
        },
      )
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
        const r = entry.refusal()
        if (r)
          throw new EndpointDisabledError(
            'url-refused',
            `the URL guard refuses a host of the partner's MongoDB deployment: ${r.message}`,
            { ...r.context, target: entry.connection.display },
          )
      },
      release: async () => {
        if (released) return
        released = true
        await this.#release(entry)
      },
    }
  }

  async #release(entry: Entry): Promise<void> {
    entry.users--
    if (entry.users > 0) return
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key)
    await entry.client
      .close()
      .catch((err: unknown) =>
        this.#log.warn('closing a partner MongoDB client failed', { target: entry.connection.display, error: err }),
      )
  }

  /** Closes every client (worker shutdown). */
  async close(): Promise<void> {
    const entries = [...this.#entries.values()]
    this.#entries.clear()
    await Promise.allSettled(entries.map((e) => e.client.close()))
  }
}
