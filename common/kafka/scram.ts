/**
 * SCRAM credentials on the Kafka cluster (KIP-554: AlterUserScramCredentials, DescribeUserScramCredentials),
 * which kafkajs' admin client lacks. The requests are encoded here and sent over kafkajs' own broker
 * connection, so the platform's TLS and SASL settings (common/kafka/client.ts kafkaConfig) apply as to
 * every other client; a broker forwards them to the KRaft controller.
 *
 * Both APIs exist in one version (0), a "flexible" one: compact strings and arrays, tagged fields, and
 * request header v2, which is kafkajs' header v1 followed by an empty tagged-field section, so the
 * body written here starts with that section; the response header v1 (correlation id + tagged
 * fields) arrives the same way, its tagged fields first in the payload kafkajs hands over.
 *
 * The salted password is computed here (RFC 5802 Hi(): PBKDF2-HMAC-SHA-512 with the salt and the
 * iterations), so the password itself never travels to the broker.
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import type { KafkaConfig } from 'kafkajs'
import { ConfigError, RetriableError } from '../errors.ts'

const require = createRequire(import.meta.url)
const Broker = require('kafkajs/src/broker') as new (o: object) => KafkajsBroker
const ConnectionPool = require('kafkajs/src/network/connectionPool') as new (o: object) => KafkajsPool
const defaultSocketFactory = require('kafkajs/src/network/socketFactory') as () => unknown
const { createLogger, LEVELS } = require('kafkajs/src/loggers') as {
  createLogger: (o: object) => unknown
  LEVELS: Record<string, number>
}
const Encoder = require('kafkajs/src/protocol/encoder') as new () => KafkajsEncoder
const Decoder = require('kafkajs/src/protocol/decoder') as new (b: Buffer) => KafkajsDecoder

interface KafkajsEncoder {
  writeInt8(v: number): KafkajsEncoder
  writeInt32(v: number): KafkajsEncoder
  writeUVarInt(v: number): KafkajsEncoder
  writeUVarIntString(v: string | null): KafkajsEncoder
  writeUVarIntBytes(v: Buffer | null): KafkajsEncoder
}
interface KafkajsDecoder {
  readInt8(): number
  readInt16(): number
  readInt32(): number
  readUVarInt(): number
  readUVarIntString(): string | null
  readTaggedFields(): unknown
}
interface KafkajsBroker {
  versions: Record<number, { minVersion: number; maxVersion: number }> | null
  connect(): Promise<void>
  disconnect(): Promise<void>
}
interface KafkajsPool {
  send<T>(req: { request: object; response: object }): Promise<T>
}

export type ScramMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512'
const MECHANISM_CODE: Record<ScramMechanism, number> = { 'SCRAM-SHA-256': 1, 'SCRAM-SHA-512': 2 }
const MECHANISM_NAME: Record<number, ScramMechanism> = { 1: 'SCRAM-SHA-256', 2: 'SCRAM-SHA-512' }
const DIGEST: Record<ScramMechanism, { hash: string; length: number }> = {
  'SCRAM-SHA-256': { hash: 'sha256', length: 32 },
  'SCRAM-SHA-512': { hash: 'sha512', length: 64 },
}
const API_DESCRIBE = 50
const API_ALTER = 51
/** Kafka's bounds for SCRAM iterations (ScramMechanism.minIterations, ScramFormatter's maximum). */
export const SCRAM_MIN_ITERATIONS = 4096
export const SCRAM_MAX_ITERATIONS = 16384

/** Error codes these APIs answer with, by name (Kafka's Errors enum). */
const ERRORS: Record<number, string> = {
  29: 'CLUSTER_AUTHORIZATION_FAILED',
  33: 'UNSUPPORTED_SASL_MECHANISM',
  35: 'UNSUPPORTED_VERSION',
  41: 'NOT_CONTROLLER',
  91: 'RESOURCE_NOT_FOUND',
  92: 'DUPLICATE_RESOURCE',
  93: 'UNACCEPTABLE_CREDENTIAL',
}
const RETRIABLE = new Set([41])

export class ScramAdminError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message)
  }
}

export interface ScramUpsert {
  user: string
  mechanism?: ScramMechanism
  password: string
  iterations?: number
}

export interface ScramDeletion {
  user: string
  mechanism?: ScramMechanism
}

export interface ScramCredentialInfo {
  user: string
  credentials: Array<{ mechanism: ScramMechanism; iterations: number }>
}

/** RFC 5802 SaltedPassword := Hi(Normalize(password), salt, i). */
export function saltedPassword(mechanism: ScramMechanism, password: string, salt: Buffer, iterations: number): Buffer {
  const d = DIGEST[mechanism]
  return pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, d.length, d.hash)
}

function brokerAddress(cfg: KafkaConfig, i: number): { host: string; port: number } {
  const list = Array.isArray(cfg.brokers) ? cfg.brokers : []
  const b = list[i % Math.max(1, list.length)]
  if (b === undefined)
    throw new ConfigError('no Kafka broker is configured for SCRAM administration', { key: 'kafka.brokers' })
  const at = b.lastIndexOf(':')
  return { host: b.slice(0, at), port: Number(b.slice(at + 1)) }
}

function errorOf(code: number, message: string | null, user: string): ScramAdminError | null {
  if (code === 0) return null
  const name = ERRORS[code] ?? `KAFKA_ERROR_${code}`
  const err = new ScramAdminError(`SCRAM credential of "${user}": ${name}${message ? `: ${message}` : ''}`, name)
  return RETRIABLE.has(code)
    ? (new RetriableError(err.message, undefined, { user, code: name }, { cause: err }) as unknown as ScramAdminError)
    : err
}

/**
 * Creates, replaces and deletes SCRAM credentials on a cluster, over one short-lived connection per
 * call (these calls are rare: a partner's credential created, rotated or revoked).
 */
export class KafkaScramAdmin {
  readonly #cfg: KafkaConfig

  constructor(cfg: KafkaConfig) {
    this.#cfg = cfg
  }

  async #withBroker<T>(fn: (pool: KafkajsPool, broker: KafkajsBroker) => Promise<T>): Promise<T> {
    const cfg = this.#cfg
    const count = Array.isArray(cfg.brokers) ? cfg.brokers.length : 1
    let last: unknown
    // any broker forwards to the controller; try each once when one cannot be reached
    for (let i = 0; i < Math.max(1, count); i++) {
      const { host, port } = brokerAddress(cfg, i)
      const logger = createLogger({ level: LEVELS.NOTHING, logCreator: () => () => undefined })
      const pool = new ConnectionPool({
        host,
        port,
        logger,
        socketFactory: cfg.socketFactory ?? defaultSocketFactory(),
        ssl: cfg.ssl ?? null,
        sasl: cfg.sasl ?? null,
        clientId: `${cfg.clientId ?? 'distributary'}-scram-admin`,
        connectionTimeout: cfg.connectionTimeout ?? 3000,
        requestTimeout: cfg.requestTimeout ?? 30000,
      })
      const broker = new Broker({ connectionPool: pool, logger })
      try {
        await broker.connect()
      } catch (err) {
        last = err
        await broker.disconnect().catch(() => undefined)
        continue
      }
      try {
        for (const api of [API_DESCRIBE, API_ALTER]) {
          if (!broker.versions?.[api]) {
            throw new ScramAdminError(
              `the Kafka cluster does not support ` +
                `${api === API_ALTER ? 'AlterUserScramCredentials' : 'DescribeUserScramCredentials'} ` +
                `(KIP-554, Kafka 2.7+ and KRaft 3.5+)`,
              'UNSUPPORTED_VERSION',
            )
          }
        }
        return await fn(pool, broker)
      } finally {
        await broker.disconnect().catch(() => undefined)
      }
    }
    throw new RetriableError(
      `no Kafka broker reachable for SCRAM administration: ${(last as Error)?.message ?? 'unknown'}`,
      undefined,
      {},
      { cause: last },
    )
  }

  /** Sets (creates or replaces) and deletes credentials in one request; throws the first failure. */
  async alter(upserts: ScramUpsert[], deletions: ScramDeletion[] = []): Promise<void> {
    const body = (enc: KafkajsEncoder) => {
      enc.writeUVarInt(0) // request header v2: tagged fields
      enc.writeUVarInt(deletions.length + 1)
      for (const d of deletions) {
        enc.writeUVarIntString(d.user)
        enc.writeInt8(MECHANISM_CODE[d.mechanism ?? 'SCRAM-SHA-512'])
        enc.writeUVarInt(0)
      }
      enc.writeUVarInt(upserts.length + 1)
      for (const u of upserts) {
        const mechanism = u.mechanism ?? 'SCRAM-SHA-512'
        const iterations = u.iterations ?? SCRAM_MIN_ITERATIONS
        if (iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS) {
          throw new ConfigError(
            `SCRAM iterations must be between ${SCRAM_MIN_ITERATIONS} and ${SCRAM_MAX_ITERATIONS}, got ${iterations}`,
            { field: 'iterations' },
          )
        }
        const salt = randomBytes(32)
        enc.writeUVarIntString(u.user)
        enc.writeInt8(MECHANISM_CODE[mechanism])
        enc.writeInt32(iterations)
        enc.writeUVarIntBytes(salt)
        enc.writeUVarIntBytes(saltedPassword(mechanism, u.password, salt, iterations))
        enc.writeUVarInt(0)
      }
      enc.writeUVarInt(0)
      return enc
    }
    const results = await this.#withBroker((pool) =>
      pool.send<Array<{ user: string; code: number; message: string | null }>>({
        request: {
          apiKey: API_ALTER,
          apiVersion: 0,
          apiName: 'AlterUserScramCredentials',
          encode: async () => body(new Encoder()),
        },
        response: {
          decode: async (raw: Buffer) => {
            const d = new Decoder(raw)
            d.readTaggedFields() // response header v1
            d.readInt32() // throttle_time_ms
            const n = d.readUVarInt() - 1
            const out: Array<{ user: string; code: number; message: string | null }> = []
            for (let i = 0; i < n; i++) {
              const user = d.readUVarIntString() ?? ''
              const code = d.readInt16()
              const message = d.readUVarIntString()
              d.readTaggedFields()
              out.push({ user, code, message })
            }
            return out
          },
          parse: async (r: unknown) => r,
        },
      }),
    )
    for (const r of results) {
      const err = errorOf(r.code, r.message, r.user)
      if (err) throw err
    }
  }

  /** Creates or replaces one user's credential. */
  async upsert(user: string, password: string, mechanism: ScramMechanism = 'SCRAM-SHA-512'): Promise<void> {
    await this.alter([{ user, password, mechanism }])
  }

  /** Deletes one user's credential; false when it had none. */
  async delete(user: string, mechanism: ScramMechanism = 'SCRAM-SHA-512'): Promise<boolean> {
    try {
      await this.alter([], [{ user, mechanism }])
      return true
    } catch (err) {
      if (err instanceof ScramAdminError && err.code === 'RESOURCE_NOT_FOUND') return false
      throw err
    }
  }

  /** The users with credentials and their mechanisms (all users, or the ones named; unknown names are left out). */
  async describe(users?: string[]): Promise<ScramCredentialInfo[]> {
    const results = await this.#withBroker((pool) =>
      pool.send<{
        code: number
        message: string | null
        results: Array<{
          user: string
          code: number
          message: string | null
          credentials: ScramCredentialInfo['credentials']
        }>
      }>({
        request: {
          apiKey: API_DESCRIBE,
          apiVersion: 0,
          apiName: 'DescribeUserScramCredentials',
          encode: async () => {
            const enc = new Encoder()
            enc.writeUVarInt(0)
            if (users === undefined)
              enc.writeUVarInt(0) // null: every user
            else {
              enc.writeUVarInt(users.length + 1)
              for (const u of users) {
                enc.writeUVarIntString(u)
                enc.writeUVarInt(0)
              }
            }
            enc.writeUVarInt(0)
            return enc
          },
        },
        response: {
          decode: async (raw: Buffer) => {
            const d = new Decoder(raw)
            d.readTaggedFields()
            d.readInt32()
            const code = d.readInt16()
            const message = d.readUVarIntString()
            const n = d.readUVarInt() - 1
            const out = []
            for (let i = 0; i < n; i++) {
              const user = d.readUVarIntString() ?? ''
              const ucode = d.readInt16()
              const umessage = d.readUVarIntString()
              const m = d.readUVarInt() - 1
              const credentials: ScramCredentialInfo['credentials'] = []
              for (let j = 0; j < m; j++) {
                const mech = d.readInt8()
                const iterations = d.readInt32()
                d.readTaggedFields()
                const name = MECHANISM_NAME[mech]
                if (name) credentials.push({ mechanism: name, iterations })
              }
              d.readTaggedFields()
              out.push({ user, code: ucode, message: umessage, credentials })
            }
            d.readTaggedFields()
            return { code, message, results: out }
          },
          parse: async (r: unknown) => r,
        },
      }),
    )
    const top = errorOf(results.code, results.message, '*')
    if (top) throw top
    const out: ScramCredentialInfo[] = []
    for (const r of results.results) {
      if (r.code === 91) continue // RESOURCE_NOT_FOUND: a named user without credentials
      const err = errorOf(r.code, r.message, r.user)
      if (err) throw err
      out.push({ user: r.user, credentials: r.credentials })
    }
    return out
  }
}
