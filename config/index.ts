/**
 * The only place that reads process.env. `loadConfig()` validates strictly: a bad value, an unknown
 * key in the config file or an unknown DISTRIBUTARY_* variable is a ConfigError naming the setting.
 */
import fs from 'node:fs'
import convict from 'convict'
import { ConfigError } from '../common/errors.ts'
import { configSchema, LOG_LEVELS, SASL_MECHANISMS, TRACES_EXPORTERS, TRACES_SAMPLERS } from './schema.ts'

export { configSchema } from './schema.ts'

export interface AppConfig {
  log: { level: (typeof LOG_LEVELS)[number] }
  tracing: {
    exporter: (typeof TRACES_EXPORTERS)[number]
    endpoint: string
    tracesEndpoint: string
    headers: string
    serviceName: string
    resourceAttributes: string
    sampler: (typeof TRACES_SAMPLERS)[number]
    samplerArg: number
  }
  http: { host: string; port: number }
  kafka: {
    brokers: string
    clientId: string
    ssl: { enabled: boolean; caFile: string; rejectUnauthorized: boolean }
    sasl: { mechanism: (typeof SASL_MECHANISMS)[number]; username: string; password: string }
    partners: { bootstrapServers: string; securityProtocol: '' | 'SASL_SSL' | 'SASL_PLAINTEXT'; topicPrefix: string }
    connectionTimeoutMs: number
    requestTimeoutMs: number
  }
  mongodb: { uri: string; database: string; serverSelectionTimeoutMs: number; maxPoolSize: number }
  schemaRegistry: {
    url: string
    username: string
    password: string
    host: string
    port: number
    anonymousLoopbackReads: boolean
    topic: string
    pinnedReaderPolicy: 'refuse' | 'flag'
  }
  management: {
    adminApiKey: string
    bodyLimit: string
    rateLimit: { perSecond: number; burst: number }
    idempotencyTtlSeconds: number
    sweepIntervalMs: number
    apiKeyCacheMs: number
    keyAttempts: { perSecond: number; burst: number }
    keyVerifyConcurrency: number
    keyVerifyQueue: number
  }
  console: { enabled: boolean; sessionTtlSeconds: number; secureCookies: boolean }
  secrets: { encryptionKeys: string; currentKeyId: string }
  urlGuard: { allowlist: string }
  worker: {
    id: string
    groupId: string
    deadLetterTopic: string
    leaseTtlMs: number
    heartbeatMs: number
    pollMs: number
    cursorFlushMs: number
    statusIntervalMs: number
    maxBuffered: number
    maxCatchUpReaders: number
    catchUpSliceMs: number
    logDelivered: boolean
    logBacklogMax: number
    collapseIndexMaxKeys: number
  }
  delivery: {
    retrySchedule: string
    retryJitter: number
    maxRetryAfterMs: number
    concurrency: number
    parkAfterFailures: number
    disableAfterMs: number
    webhook: { timeoutMs: number; connectionsPerOrigin: number; keepAliveTimeoutMs: number; connectTimeoutMs: number }
    mapping: { processes: number; timeLimitMs: number; memoryLimitMb: number; maxOutputBytes: number }
    mongodb: {
      serverSelectionTimeoutMs: number
      connectTimeoutMs: number
      socketTimeoutMs: number
      maxPoolSize: number
    }
  }
  sources: { file: string; dropRoot: string }
  bench: {
    csvRows: number
    latencyRate: number
    latencyBatchMs: number
    latencyBrokerWarmupMs: number
    collapseEvents: number
    collapseKeys: number
    snapshotKeys: number
    partnersSubscriptions: number
    partnersRate: number
    partnersWorkers: number
    partnersCpuProf: string
    partnerTopicsSubscriptions: number
    partnerTopicsEvents: number
    partnerTopicsSkipLatency: boolean
    deals: number
    dealsRate: number
    consoleDeliveries: number
    csvCpuProf: string
    latencyDump: string
  }
  ingest: {
    maxEvents: number
    bodyLimitBytes: number
    idempotencyWindowMs: number
    bufferCapacity: number
    retryAfterSeconds: number
    rateLimit: { eventsPerSecond: number; burst: number }
  }
  outbox: { relayEnabled: boolean; pollMs: number; leaseTtlMs: number }
  deals: { protectionDays: number; reminderDays: number; leadAcceptHours: number; expiryIntervalMs: number }
  cli: { apiUrl: string; apiKey: string }
  stack: {
    dir: string
    cacheDir: string
    kafka: { version: string; brokers: number; port: number; controllerPort: number; partnerPort: number; heap: string }
    mongodb: { port: number }
    readyTimeoutMs: number
  }
}

convict.addFormat({
  name: 'broker-list',
  validate(value: unknown) {
    if (typeof value !== 'string') throw new Error('must be a comma-separated list of host:port')
    if (value === '') return
    for (const b of value.split(',')) {
      if (!/^[^\s:,]+:\d{1,5}$/.test(b.trim()))
        throw new Error(`"${b}" is not host:port (expected e.g. broker1:9092,broker2:9092)`)
    }
  },
})
convict.addFormat({
  name: 'kafka-name-prefix',
  validate(value: unknown) {
    // a Kafka topic name's characters; the prefix must end with a separator so that one partner's names never prefix
    // another's
    if (typeof value !== 'string' || !/^[A-Za-z0-9._-]{1,100}[._-]$/.test(value)) {
      throw new Error('must be 2 to 101 characters of letters, digits, ".", "_" or "-", ending with ".", "_" or "-"')
    }
  },
})
convict.addFormat({
  name: 'mongodb-uri',
  validate(value: unknown) {
    if (typeof value !== 'string') throw new Error('must be a string')
    if (value !== '' && !/^mongodb(\+srv)?:\/\/[^\s]+$/.test(value))
      throw new Error('must start with mongodb:// or mongodb+srv://')
  },
})
convict.addFormat({
  name: 'url-or-empty',
  validate(value: unknown) {
    if (typeof value !== 'string') throw new Error('must be a string')
    if (value === '') return
    let u: URL
    try {
      u = new URL(value)
    } catch {
      throw new Error('must be an http:// or https:// URL')
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must be an http:// or https:// URL')
  },
})

/**
 * OpenTelemetry's key=value,key=value lists (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES); see
 * parseKeyValueList.
 */
convict.addFormat({
  name: 'key-value-list',
  validate(value: unknown) {
    if (typeof value !== 'string') throw new Error('must be a string')
    parseKeyValueList(value)
  },
})
convict.addFormat({
  name: 'duration-list',
  validate(value: unknown) {
    if (
      typeof value !== 'string' ||
      !/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*(,\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*)*$/.test(value)
    ) {
      throw new Error('must be a comma-separated list of durations such as 5s,5m,30m,2h')
    }
  },
})
/**
 * An on/off setting. convict's own Boolean took every text but "false" as on (`WORKER_LOG_DELIVERED=0` logged every
 * delivery): here true/false, 1/0, yes/no and on/off are understood and anything else is refused, naming the setting.
 */
const BOOLEAN_TEXT = new Map([
  ['true', true],
  ['1', true],
  ['yes', true],
  ['on', true],
  ['false', false],
  ['0', false],
  ['no', false],
  ['off', false],
])
convict.addFormat({
  name: 'boolean',
  validate(value: unknown) {
    if (typeof value !== 'boolean') throw new Error('must be true or false (also 1/0, yes/no, on/off)')
  },
  coerce: (v: string) => BOOLEAN_TEXT.get(v.trim().toLowerCase()) ?? v,
})
convict.addFormat({
  name: 'positive-int',
  validate(value: unknown) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
      throw new Error('must be a positive integer')
  },
  coerce: (v: string) => Number(v),
})
/** The sizes of local Kafka cluster the stack provisions (a KRaft controller quorum wants an odd count). */
export const STACK_KAFKA_NODE_COUNTS = [1, 3] as const
convict.addFormat({
  name: 'kafka-node-count',
  validate(value: unknown) {
    if (!(STACK_KAFKA_NODE_COUNTS as readonly unknown[]).includes(value))
      throw new Error(`must be ${STACK_KAFKA_NODE_COUNTS.join(' or ')}`)
  },
  coerce: (v: string) => Number(v),
})
convict.addFormat({
  name: 'fraction',
  validate(value: unknown) {
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw new Error('must be a number from 0 to 1')
  },
  coerce: (v: string) => Number(v),
})

/**
 * `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage form OpenTelemetry's variables use), as
 * a record; '' is none. Throws naming the pair at fault (convict adds the setting).
 */
export function parseKeyValueList(value: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (value.trim() === '') return out
  // the pair at fault is named by its position, never shown: a header value may be a credential
  value.split(',').forEach((pair, i) => {
    const at = pair.indexOf('=')
    const key = at > 0 ? pair.slice(0, at).trim() : ''
    if (key === '' || /\s/.test(key))
      throw new Error(`pair ${i + 1} is not key=value (expected e.g. key1=value1,key2=value2)`)
    try {
      out[key] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      throw new Error(`the value of ${key} is not percent-encoded text`)
    }
  })
  return out
}

/** Environment variables the schema declares, plus the one naming the config file. */
export function knownEnvNames(): Set<string> {
  return new Set(['DISTRIBUTARY_CONFIG', ...envNamesByKey().values()])
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv
  /** Values that win over env and file (used by the CLI and tests). */
  overrides?: Record<string, unknown>
}

export function loadConfig(options: LoadOptions = {}): AppConfig {
  const env = options.env ?? process.env
  const known = knownEnvNames()
  const unknownEnv = Object.keys(env).filter((k) => k.startsWith('DISTRIBUTARY_') && !known.has(k))
  if (unknownEnv.length > 0) {
    throw new ConfigError(
      `unknown setting ${unknownEnv.join(', ')}: no such environment variable; ` +
        `see the configuration table in README.md`,
      { keys: unknownEnv },
    )
  }
  try {
    const conf = convict(configSchema as never, { env: env as Record<string, string>, args: [] })
    const file = env.DISTRIBUTARY_CONFIG
    if (file) {
      if (!fs.existsSync(file))
        throw new ConfigError(`DISTRIBUTARY_CONFIG: file ${file} does not exist`, { key: 'DISTRIBUTARY_CONFIG' })
      conf.loadFile(file)
    }
    if (options.overrides) conf.load(options.overrides)
    conf.validate({ allowed: 'strict' })
    const config = conf.getProperties() as unknown as AppConfig
    checkCombinations(config)
    return config
  } catch (err) {
    if (err instanceof ConfigError) throw err
    const message = err instanceof Error ? err.message : String(err)
    // convict names the key ("http.port: ..."); add the environment variable that sets it.
    const envOf = envNamesByKey()
    const named = message
      .split('\n')
      .map((line) =>
        line.replace(/^([\w.]+): /, (m, key: string) => (envOf.get(key) ? `${key} (env ${envOf.get(key)}): ` : m)),
      )
      .join('\n')
    throw new ConfigError(`invalid configuration: ${named}`, {}, { cause: err })
  }
}

function checkCombinations(config: AppConfig): void {
  const { sasl } = config.kafka
  if (sasl.mechanism !== 'none' && (sasl.username === '' || sasl.password === '')) {
    throw new ConfigError(
      'invalid configuration: kafka.sasl.username (env KAFKA_SASL_USERNAME) and ' +
        'kafka.sasl.password (env KAFKA_SASL_PASSWORD) are required when ' +
        'kafka.sasl.mechanism is ' +
        sasl.mechanism,
      { key: 'kafka.sasl' },
    )
  }
  if (config.management.adminApiKey !== '' && config.management.adminApiKey.length < 32) {
    throw new ConfigError(
      'invalid configuration: management.adminApiKey (env ADMIN_API_KEY) must be at ' +
        'least 32 characters (e.g. `openssl rand -base64 32`)',
      { key: 'management.adminApiKey' },
    )
  }
  const { port: first, brokers } = config.stack.kafka
  const controllers = localControllerPorts(config)
  if (
    controllers.some((p) => p >= first && p < first + brokers) ||
    controllers[controllers.length - 1]! > 65535 ||
    first + brokers - 1 > 65535
  ) {
    throw new ConfigError(
      `invalid configuration: stack.kafka.controllerPort (env ` +
        `STACK_KAFKA_CONTROLLER_PORT): the local Kafka nodes' controller ports ` +
        `${controllers.join(', ')} must be free of their broker ports ` +
        `${localBrokerPorts(config).join(', ')} and at most 65535 (0 places them ` +
        `after the brokers)`,
      { key: 'stack.kafka.controllerPort' },
    )
  }
  const partners = localPartnerPorts(config)
  const taken = new Set([...localBrokerPorts(config), ...controllers])
  if (partners.some((p) => taken.has(p)) || partners[partners.length - 1]! > 65535) {
    throw new ConfigError(
      `invalid configuration: stack.kafka.partnerPort (env ` +
        `STACK_KAFKA_PARTNER_PORT): the local Kafka nodes' partner listener ports ` +
        `${partners.join(', ')} must be free of their broker and controller ports ` +
        `${[...taken].join(', ')} and at most 65535 (0 places them after the ` +
        `controllers)`,
      { key: 'stack.kafka.partnerPort' },
    )
  }
  if (config.kafka.ssl.caFile !== '' && !fs.existsSync(config.kafka.ssl.caFile)) {
    throw new ConfigError(
      `invalid configuration: kafka.ssl.caFile (env KAFKA_SSL_CA_FILE): file ${config.kafka.ssl.caFile} does not exist`,
      { key: 'kafka.ssl.caFile' },
    )
  }
}

function envNamesByKey(): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      if (v && typeof v === 'object' && 'doc' in v) {
        const env = (v as { env?: string }).env
        if (env) out.set(prefix + k, env)
      } else if (v && typeof v === 'object') walk(v as Record<string, unknown>, `${prefix}${k}.`)
    }
  }
  walk(configSchema, '')
  return out
}

/** True when no external Kafka/MongoDB is configured, so the local stack is what the platform uses. */
export function usesLocalKafka(config: AppConfig): boolean {
  return config.kafka.brokers === ''
}
export function usesLocalMongo(config: AppConfig): boolean {
  return config.mongodb.uri === ''
}

/** Broker ports of the local stack's Kafka nodes: stack.kafka.port and the next ones, one per node. */
export function localBrokerPorts(config: AppConfig): number[] {
  const { port, brokers } = config.stack.kafka
  return Array.from({ length: brokers }, (_, i) => port + i)
}
/**
 * Controller ports of the local stack's Kafka nodes: stack.kafka.controllerPort (0: after the broker ports) and the
 * next ones.
 */
export function localControllerPorts(config: AppConfig): number[] {
  const { port, brokers, controllerPort } = config.stack.kafka
  const first = controllerPort !== 0 ? controllerPort : port + brokers
  return Array.from({ length: brokers }, (_, i) => first + i)
}

/**
 * Partner (SASL) listener ports of the local stack's Kafka nodes: stack.kafka.partnerPort (0: after the controller
 * ports) and the next ones.
 */
export function localPartnerPorts(config: AppConfig): number[] {
  const { brokers, partnerPort } = config.stack.kafka
  const controllers = localControllerPorts(config)
  const first = partnerPort !== 0 ? partnerPort : controllers[controllers.length - 1]! + 1
  return Array.from({ length: brokers }, (_, i) => first + i)
}

export interface PartnerKafkaAccess {
  /** What partners' clients bootstrap from (the brokers' SASL listener); empty: partners get no Kafka access. */
  bootstrapServers: string[]
  securityProtocol: 'SASL_SSL' | 'SASL_PLAINTEXT'
  topicPrefix: string
}

/** Where partners read their kafka-topic subscriptions (kafka.partners.*, or the local stack's partner listener). */
export function partnerKafkaAccess(config: AppConfig): PartnerKafkaAccess {
  const p = config.kafka.partners
  const local = usesLocalKafka(config)
  const bootstrapServers =
    p.bootstrapServers !== ''
      ? p.bootstrapServers.split(',').map((b) => b.trim())
      : local
        ? localPartnerPorts(config).map((port) => `127.0.0.1:${port}`)
        : []
  const securityProtocol =
    p.securityProtocol !== '' ? p.securityProtocol : local && p.bootstrapServers === '' ? 'SASL_PLAINTEXT' : 'SASL_SSL'
  return { bootstrapServers, securityProtocol, topicPrefix: p.topicPrefix }
}

export function kafkaBrokers(config: AppConfig): string[] {
  return usesLocalKafka(config)
    ? localBrokerPorts(config).map((p) => `127.0.0.1:${p}`)
    : config.kafka.brokers.split(',').map((b) => b.trim())
}
export function mongoUri(config: AppConfig): string {
  return usesLocalMongo(config) ? `mongodb://127.0.0.1:${config.stack.mongodb.port}/` : config.mongodb.uri
}
