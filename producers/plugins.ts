/**
 * The source plug-ins a source-connector resource can name (`kind`): each one's config schema (what
 * the management API and the `sources.file` declarations are validated against, faults by setting),
 * its secret settings (sealed at rest, never returned), and how the runtime builds it.
 *
 * HTTP ingestion is not here: it is built into the platform (POST /v1/events/{eventType}).
 */
import path from 'node:path'
import type { MongoClient } from 'mongodb'
import type { UrlRefusedError } from '../common/errors.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import { checkConfig, type ConfigSchema, type SettingFault } from '../connectors/source/config.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../connectors/source/types.ts'
import { guardedMongoClient } from '../consumers/mongodb/connection.ts'
import { ALL_TOPICS, type TopicSpec } from '../schemas/topics.ts'
import { CsvDropSource, csvDropConfigSchema, parseCsvDropConfig } from './csv-drop/source.ts'
import { MongoDbSource, mongoSourceConfigSchema, parseMongoSourceConfig, type MongoSourceConfig } from './mongodb/source.ts'

export const SOURCE_KINDS = ['csv-drop', 'mongodb'] as const
export type SourceKind = (typeof SOURCE_KINDS)[number]

/** What the runtime runs for one source: the connector, its parsed config, its topic, and what to close after it stopped. */
export interface BuiltSource {
  connector: SourceConnector<any>
  config: unknown
  topics: TopicSpec[]
  close(): Promise<void>
}

export interface SourcePlugin {
  kind: SourceKind
  /** Every setting of the resource's `config`. */
  schema: ConfigSchema
  /** Settings that are secrets (sealed at rest, write-only in the API). */
  secretPaths: readonly string[]
  /** Every fault of a config (by setting name); [] when it is valid. */
  check(raw: unknown): SettingFault[]
  /** Builds the connector from a valid config (secrets already opened). */
  build(raw: Record<string, unknown>, ctx: BuildContext): BuiltSource
}

/** What the runtime hands every plug-in it builds. */
export interface BuildContext {
  /** The SSRF guard every outbound connection of a source goes through (MongoDB connection strings). */
  guard: UrlGuard
}

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/

/** The topic declaration of an event type, under the configured topic name. */
function topicFor(eventType: string, topic: string): TopicSpec | undefined {
  const spec = ALL_TOPICS.find((t) => t.eventTypes.includes(eventType))
  return spec ? { ...spec, name: topic || spec.name } : undefined
}

function checkEventTopic(c: { eventType?: unknown; topic?: unknown }, faults: SettingFault[]): void {
  if (typeof c.eventType === 'string' && !topicFor(c.eventType, '')) {
    faults.push({ field: 'eventType', message: `is not a known event type (known: ${ALL_TOPICS.flatMap((t) => t.eventTypes).join(', ')})` })
  }
  if (typeof c.topic === 'string' && c.topic !== '' && !TOPIC_NAME.test(c.topic)) faults.push({ field: 'topic', message: 'must be a Kafka topic name (letters, digits, . _ -)' })
}

const rawObject = (raw: unknown): Record<string, unknown> => (raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {})

/** One fault per setting: the schema's (type, bounds) before the plug-in's own checks. */
function firstPerField(faults: SettingFault[]): SettingFault[] {
  const seen = new Set<string>()
  return faults.filter((f) => !seen.has(f.field) && seen.add(f.field))
}

const csvDrop: SourcePlugin = {
  kind: 'csv-drop',
  schema: csvDropConfigSchema,
  secretPaths: [],
  check(raw) {
    const faults: SettingFault[] = [...checkConfig('csv-drop', csvDropConfigSchema, raw).faults]
    const c = rawObject(raw)
    for (const key of ['dir', 'stateDir', 'processedDir'] as const) {
      const v = c[key]
      if (typeof v === 'string' && v !== '' && !path.isAbsolute(v)) faults.push({ field: key, message: 'must be an absolute path' })
    }
    if (typeof c.delimiter === 'string' && c.delimiter.length !== 1) faults.push({ field: 'delimiter', message: 'must be one character' })
    checkEventTopic(c, faults)
    return firstPerField(faults)
  },
  build(raw) {
    const config = parseCsvDropConfig(raw)
    const topics = [topicFor(config.eventType, config.topic)!]
    return { connector: new CsvDropSource(topics), config, topics, close: async () => undefined }
  },
}

/**
 * The MongoDB source on a client pinned to the URL guard (consumers/mongodb/connection.ts): once the
 * guard refused a host the client was to connect to (the client is then closed), start and poll fail
 * with that refusal, so the source's status names it; the worker builds a new client on its retry.
 */
class GuardedMongoDbSource extends MongoDbSource {
  constructor(
    client: MongoClient,
    topics: readonly TopicSpec[],
    private readonly refusal: () => UrlRefusedError | null,
  ) {
    super(client, topics)
  }

  override async start(config: MongoSourceConfig, ctx: SourceContext): Promise<void> {
    try {
      await super.start(config, ctx)
    } catch (err) {
      throw this.refusal() ?? err
    }
    const refused = this.refusal()
    if (refused) throw refused
  }

  override async poll(): Promise<SourceRecord[]> {
    const refused = this.refusal()
    if (refused) throw refused
    try {
      return await super.poll()
    } catch (err) {
      throw this.refusal() ?? err
    }
  }
}

const mongoSchema: ConfigSchema = {
  connectionString: { doc: 'Connection string of the MongoDB server holding the collection (a secret: sealed at rest, never returned).', type: 'string' },
  ...mongoSourceConfigSchema,
}

const mongodb: SourcePlugin = {
  kind: 'mongodb',
  schema: mongoSchema,
  secretPaths: ['connectionString'],
  check(raw) {
    const faults: SettingFault[] = [...checkConfig('mongodb', mongoSchema, raw).faults]
    const c = rawObject(raw)
    if (typeof c.connectionString === 'string' && !/^mongodb(\+srv)?:\/\/\S+$/.test(c.connectionString)) faults.push({ field: 'connectionString', message: 'must start with mongodb:// or mongodb+srv://' })
    checkEventTopic(c, faults)
    return firstPerField(faults)
  },
  build(raw, { guard }) {
    const { connectionString, ...rest } = raw
    const config = parseMongoSourceConfig(rest)
    const topics = [topicFor(config.eventType, config.topic)!]
    const { client, refusal } = guardedMongoClient(connectionString as string, { serverSelectionTimeoutMS: 5000 }, guard, undefined, 'config.connectionString')
    return { connector: new GuardedMongoDbSource(client, topics, refusal), config: { ...config, topic: topics[0]!.name }, topics, close: () => client.close() }
  },
}

export const SOURCE_PLUGINS: Record<SourceKind, SourcePlugin> = { 'csv-drop': csvDrop, mongodb }

export function isSourceKind(kind: unknown): kind is SourceKind {
  return typeof kind === 'string' && (SOURCE_KINDS as readonly string[]).includes(kind)
}
