/**
 * The source plug-ins a source-connector resource can name (`kind`): each one's config schema (what
 * the management API and the `sources.file` declarations are validated against, faults by setting),
 * its secret settings (sealed at rest, never returned), and how the runtime builds it.
 *
 * HTTP ingestion is not here: it is built into the platform (POST /v1/events/{eventType}).
 *
 * Confinement: a source writes only to the topic of its contract (its event type's declared topic;
 * a `topic` setting naming another is a fault), never to partners.profiles (only the platform's
 * outbox publishes partner profiles); a csv-drop source's folders lie in its publisher's drop folder
 * (csv-drop/folders.ts). The same checks run when a source is declared (API, sources file) and when
 * the runtime builds it, so a source stored before them fails to start, naming the setting.
 */
import type { MongoClient } from 'mongodb'
import { ConfigError, type UrlRefusedError } from '../common/errors.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import { checkConfig, type ConfigSchema, type SettingFault } from '../connectors/source/config.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../connectors/source/types.ts'
import { guardedMongoClient } from '../consumers/mongodb/connection.ts'
import { ALL_TOPICS, type TopicSpec } from '../schemas/topics.ts'
import { FOLDER_SETTINGS, folderFaults, folderTextFault, publisherDropFolder } from './csv-drop/folders.ts'
import { CsvDropSource, csvDropConfigSchema, parseCsvDropConfig } from './csv-drop/source.ts'
import {
  MongoDbSource,
  mongoSourceConfigSchema,
  parseMongoSourceConfig,
  type MongoSourceConfig,
} from './mongodb/source.ts'

export const SOURCE_KINDS = ['csv-drop', 'mongodb'] as const
export type SourceKind = (typeof SOURCE_KINDS)[number]

/**
 * What the runtime runs for one source: the connector, its parsed config, its topic, and what to close after it
 * stopped.
 */
export interface BuiltSource {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each plug-in's own record type
  connector: SourceConnector<any>
  config: unknown
  topics: TopicSpec[]
  close(): Promise<void>
}

/** Whose source it is: its publisher, and the drop root holding each publisher's drop folder (SOURCES_DROP_ROOT). */
export interface SourceOwner {
  publisherId: string
  dropRoot: string
}

export interface SourcePlugin {
  kind: SourceKind
  /** Every setting of the resource's `config`. */
  schema: ConfigSchema
  /** Settings that are secrets (sealed at rest, write-only in the API). */
  secretPaths: readonly string[]
  /** What the API document says of settings beyond their types (configJsonSchema), each also applied by `check`. */
  documented?: Record<string, Record<string, unknown>>
  /**
   * Every fault of a config (by setting name); [] when it is valid. Without an owner only what holds
   * for any owner (a sources file is read before its publishers are known).
   */
  check(raw: unknown, owner?: SourceOwner): SettingFault[]
  /** Builds the connector from a checked config (secrets already opened). */
  build(raw: Record<string, unknown>, ctx: BuildContext): BuiltSource
}

/** What the runtime hands every plug-in it builds. */
export interface BuildContext {
  /** The SSRF guard every outbound connection of a source goes through (MongoDB connection strings). */
  guard: UrlGuard
  /** Whose source it is (its topic and folders). */
  owner: SourceOwner
}

/** partners.profiles and leads.assignments: written by the platform's outbox only, never by a source. */
const isPlatformOnly = (t: TopicSpec | undefined): boolean => t?.writtenBy === 'platform'

/**
 * The topic a source of this event type writes: its contract's declared topic. A `topic` setting
 * may only repeat it; partner profiles are refused. Faults go to `faults` (by setting name).
 */
function contractTopic(
  c: { eventType?: unknown; topic?: unknown },
  defaultEventType: string,
  faults: SettingFault[],
): TopicSpec | undefined {
  const before = faults.length
  const eventType = typeof c.eventType === 'string' ? c.eventType : defaultEventType
  const spec = ALL_TOPICS.find((t) => t.eventTypes.includes(eventType))
  if (!spec)
    faults.push({
      field: 'eventType',
      message: `is not a known event type (known: ${ALL_TOPICS.filter((t) => !isPlatformOnly(t))
        .flatMap((t) => t.eventTypes)
        .join(', ')})`,
    })
  else if (isPlatformOnly(spec))
    faults.push({
      field: 'eventType',
      message: `${eventType} is published by the platform only (the organizations' outbox), not by a source`,
    })
  const topic = c.topic
  if (typeof topic !== 'string' || topic === '' || topic === spec?.name)
    return faults.length === before ? spec : undefined
  if (isPlatformOnly(ALL_TOPICS.find((t) => t.name === topic)))
    faults.push({
      field: 'topic',
      message: `${topic} is written by the platform only (the organizations' outbox), not by a source`,
    })
  else if (spec && !isPlatformOnly(spec))
    faults.push({
      field: 'topic',
      message:
        `must be ${spec.name}, the topic of ${eventType} (or left out): a source ` +
        `writes only to its contract's topic`,
    })
  else faults.push({ field: 'topic', message: 'must be left out: a source writes only to the topic of its event type' })
  return undefined
}

const rawObject = (raw: unknown): Record<string, unknown> =>
  raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {}

/** One fault per setting: the schema's (type, bounds) before the plug-in's own checks. */
function firstPerField(faults: SettingFault[]): SettingFault[] {
  const seen = new Set<string>()
  return faults.filter((f) => !seen.has(f.field) && seen.add(f.field))
}

const defaultEventType = (schema: ConfigSchema) => schema.eventType!.default as string

const csvDrop: SourcePlugin = {
  kind: 'csv-drop',
  schema: csvDropConfigSchema,
  secretPaths: [],
  check(raw, owner) {
    const faults: SettingFault[] = [...checkConfig('csv-drop', csvDropConfigSchema, raw).faults]
    const c = rawObject(raw)
    for (const key of FOLDER_SETTINGS) {
      const v = c[key]
      const fault = typeof v === 'string' ? folderTextFault(v) : undefined
      if (fault) faults.push({ field: key, message: fault })
    }
    if (owner) faults.push(...folderFaults(publisherDropFolder(owner.dropRoot, owner.publisherId), c))
    // The platform stamps the source's owner on every row; a constant naming another is refused, never believed.
    const constants = c.constants as Record<string, unknown> | undefined
    if (
      owner &&
      constants &&
      typeof constants === 'object' &&
      'manufacturerId' in constants &&
      constants.manufacturerId !== owner.publisherId
    ) {
      faults.push({
        field: 'constants.manufacturerId',
        message:
          `names ${String(constants.manufacturerId)}, but the source publishes for ` +
          `its owner ${owner.publisherId}: leave it out (the platform fills it in)`,
      })
    }
    if (typeof c.delimiter === 'string' && c.delimiter.length !== 1)
      faults.push({ field: 'delimiter', message: 'must be one character' })
    contractTopic(c, defaultEventType(csvDropConfigSchema), faults)
    return firstPerField(faults)
  },
  build(raw, { owner }) {
    const config = parseCsvDropConfig(raw, publisherDropFolder(owner.dropRoot, owner.publisherId))
    const topics = [contractTopic(config, '', [])!]
    return {
      connector: new CsvDropSource(topics),
      config: { ...config, topic: topics[0]!.name },
      topics,
      close: async () => undefined,
    }
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
  connectionString: {
    doc: 'Connection string of the MongoDB server holding the collection (a secret: sealed at rest, never returned).',
    type: 'string',
  },
  ...mongoSourceConfigSchema,
}

/** A MongoDB source's connection string, as its check and the API document (pattern) say it. */
const MONGODB_URL = /^mongodb(\+srv)?:\/\/\S+$/

const mongodb: SourcePlugin = {
  kind: 'mongodb',
  schema: mongoSchema,
  secretPaths: ['connectionString'],
  documented: { connectionString: { pattern: MONGODB_URL.source } },
  check(raw) {
    const faults: SettingFault[] = [...checkConfig('mongodb', mongoSchema, raw).faults]
    const c = rawObject(raw)
    if (typeof c.connectionString === 'string' && !MONGODB_URL.test(c.connectionString))
      faults.push({ field: 'connectionString', message: 'must start with mongodb:// or mongodb+srv://' })
    contractTopic(c, defaultEventType(mongoSchema), faults)
    return firstPerField(faults)
  },
  build(raw, { guard }) {
    const { connectionString, ...rest } = raw
    const config = parseMongoSourceConfig(rest)
    const topics = [contractTopic(config, '', [])!]
    const { client, refusal } = guardedMongoClient(
      connectionString as string,
      { serverSelectionTimeoutMS: 5000 },
      guard,
      undefined,
      'config.connectionString',
    )
    return {
      connector: new GuardedMongoDbSource(client, topics, refusal),
      config: { ...config, topic: topics[0]!.name },
      topics,
      close: () => client.close(),
    }
  },
}

export const SOURCE_PLUGINS: Record<SourceKind, SourcePlugin> = { 'csv-drop': csvDrop, mongodb }

/**
 * Builds a source for the runtime after checking its config for its owner: a source stored before a
 * check existed (a foreign topic, a folder outside its publisher's) fails here with a ConfigError
 * naming each bad setting (`config.topic ...`), which the worker reports as the source's last error.
 */
export function buildSource(kind: SourceKind, raw: Record<string, unknown>, ctx: BuildContext): BuiltSource {
  const plugin = SOURCE_PLUGINS[kind]
  const faults = plugin.check(raw, ctx.owner)
  if (faults.length > 0) {
    const fields = faults.map((f) => ({ field: f.field ? `config.${f.field}` : 'config', message: f.message }))
    throw ConfigError.ofFields(`${kind}: invalid config`, fields, { plugin: kind })
  }
  return plugin.build(raw, ctx)
}

export function isSourceKind(kind: unknown): kind is SourceKind {
  return typeof kind === 'string' && (SOURCE_KINDS as readonly string[]).includes(kind)
}
