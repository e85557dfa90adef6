/**
 * `distributary migrate keys`: moves the rows of topics written before keys carried their publisher
 * (key contract version 1: {sku, locationId} or {dealId}) to version-2 keys ({manufacturerId, ...}),
 * and deletes the version-1 keys with tombstones (docs/tenancy.md).
 *
 * It reads each topic from its low to its high watermark (every partition) and keeps, per version-1
 * key and partition, the latest record of each publisher stamp (ce_publisherid; none: ''), since a
 * version-1 key may hold the rows of several publishers that shared a SKU/location code or a deal id.
 * A stamped tombstone ends its publisher's row; a tombstone without a stamp ends every row of the key
 * (whose row it deleted is unknown, and re-producing a deleted row would resurrect it). For each row
 * still live:
 *  - stamped P, believed by the rule of the sink (connectors/sink/entitlement.ts publisherOf: the
 *    value's manufacturerId, when it has one, equals P), and no version-2 key {P, ...} seen (any record,
 *    tombstones included: the newer state wins): its latest value bytes (the value contract did not
 *    change) are produced under the version-2 key, with the original headers, a new ce_id and
 *    `distributary_migrated_from` = topic/partition/offset;
 *  - without a stamp, or with a value naming another manufacturer: not re-produced (the owner is
 *    unknown; its publisher re-sends its state) and reported by key and offset;
 *  - then a tombstone for the version-1 key in the same partition, per live row's stamp (none for an
 *    unstamped row), with the envelope the sink runtime reads, so compaction drops the version-1 key
 *    and MongoDB projections delete its document (a tombstone reaches the sinks of its stamp's partners).
 * The re-produced records go first, the tombstones after them, through an idempotent producer
 * (acks=-1, the platform's KeyHashPartitioner). A second run finds only tombstones and version-2 keys
 * and writes nothing. Before producing, the records written since the scan (publishers keep
 * publishing) are read too, so a version-2 key created meanwhile is not overwritten.
 */
import { randomUUID } from 'node:crypto'
import {
  type Admin,
  createAdmin,
  createProducer,
  type IHeaders,
  type Kafka,
  type KafkaMessage,
  type Message,
} from '../common/kafka/index.ts'
import type avro from 'avsc'
import { createKafka } from '../common/kafka/index.ts'
import { DataError, RetriableError, SyndicationError } from '../common/errors.ts'
import type { AppConfig } from '../config/index.ts'
import { publisherOf } from '../connectors/sink/entitlement.ts'
import { textHeaders } from '../connectors/sink/records.ts'
import { readRanges, type ScanRange } from '../connectors/sink/scan.ts'
import { POSITION_HEADER } from '../connectors/source/recovery.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { envelope, HEADER, toHeaders, uuidv7 } from '../schemas/headers.ts'
import { AvroSerde, RegistryClient } from '../schemas/serde/index.ts'
import { keySubject, PUBLISHER_TOPICS, valueSubject, type TopicSpec } from '../schemas/topics.ts'
import { createProgress, type ProgressStream } from './progress.ts'
import { encryptionKeys } from './key-ring.ts'
import { createLogger } from '../common/logger.ts'
import { stackSettings } from '../stack/index.ts'

/** The key field naming the publisher (version 2 of the publisher topics' key contracts). */
const OWNER_FIELD = 'manufacturerId'
/** Where a re-produced record came from: `<topic>/<partition>/<offset>`. */
export const MIGRATED_FROM_HEADER = 'distributary_migrated_from'
/** ce_source of the tombstones the migration writes. */
export const MIGRATION_SOURCE = '/migrations/keys'
/** Rows listed by key in a report (the counts cover all). */
const LISTED = 20
const SEND_BATCH = 500

export const MIGRATE_TOPIC_CHOICES = [...PUBLISHER_TOPICS.map((t) => t.name), 'all'] as const

export interface MigrateKeysDeps {
  config: AppConfig
  /** Default: a client from the configuration. */
  kafka?: Kafka
  /**
   * Default: the registry the platform uses (SCHEMA_REGISTRY_URL, or the built-in one at SCHEMA_REGISTRY_HOST:PORT).
   */
  serde?: AvroSerde
  /** Progress of the scan (default: none). */
  progress?: ProgressStream
}

export interface MigrateKeysOptions {
  /** The topics to migrate (publisher topics: their keys carry the publisher). */
  topics: readonly TopicSpec[]
  /** Read and report; write nothing. */
  dryRun: boolean
}

export interface MigratedRow {
  /** The version-1 key (decoded, as JSON) and where its row's latest record is. */
  key: string
  partition: number
  offset: string
  /** The stamp (ce_publisherid) of the row; null: none. */
  publisherId: string | null
}

export interface SkippedRow extends MigratedRow {
  reason: string
}

export interface TopicMigration {
  topic: string
  /** false: the topic does not exist (nothing to migrate). */
  exists: boolean
  recordsScanned: number
  /** Records whose key is not an Avro key the registry knows (left alone). */
  undecodableKeys: number
  /** Distinct version-1 keys (per partition), and those holding a live row (not a tombstone). */
  v1Keys: number
  v1KeysLive: number
  /** Distinct version-2 keys seen (tombstones included). */
  v2Keys: number
  /** Rows produced (or, in a dry run, to be produced) under their version-2 key; the first ones listed. */
  reproduced: { count: number; first: Array<MigratedRow & { to: string }> }
  /** Stamped rows not re-produced because their version-2 key already exists (the newer state wins). */
  keptNewer: number
  /** Rows not re-produced because their owner is unknown (no stamp, or a value naming another manufacturer). */
  skipped: { count: number; first: SkippedRow[] }
  /** Version-1 keys given tombstones, and the tombstones (one per live row's stamp). */
  tombstonedKeys: number
  tombstones: number
}

export interface MigrationReport {
  dryRun: boolean
  topics: TopicMigration[]
}

/** The latest record of one row (one stamp) of a version-1 key. */
interface Latest {
  offset: string
  timestamp: number
  value: Buffer | null
  headers: Record<string, string>
}

interface V1Key {
  partition: number
  bytes: Buffer
  decoded: Record<string, unknown>
  text: string
  /** stamp ('' = none) -> the latest record of that stamp. */
  rows: Map<string, Latest>
}

interface ScanState {
  v1: Map<string, V1Key>
  /** Identities of the version-2 keys seen. */
  v2: Set<string>
  scanned: number
  undecodable: number
}

/** Where the command finds the registry, for error messages: the settings to check. */
function registrySetting(config: AppConfig): string {
  return config.schemaRegistry.url !== ''
    ? 'SCHEMA_REGISTRY_URL (schemaRegistry.url)'
    : 'SCHEMA_REGISTRY_HOST and SCHEMA_REGISTRY_PORT (schemaRegistry.host/port: the ' +
        'built-in registry of the api process), or SCHEMA_REGISTRY_URL for an ' +
        'external registry'
}

/** The registry the platform uses; an error naming the setting when it has no address or does not answer. */
async function platformSerde(deps: MigrateKeysDeps): Promise<AvroSerde> {
  const { config } = deps
  if (!deps.serde && config.schemaRegistry.url === '' && config.schemaRegistry.port === 0) {
    throw new SyndicationError(
      'CONFIG_INVALID',
      'migrate keys needs the schema registry the platform uses: set ' +
        'SCHEMA_REGISTRY_URL to it, or SCHEMA_REGISTRY_PORT to the port the api ' +
        'process serves the built-in registry on (not 0)',
      false,
      { field: 'schemaRegistry.port' },
    )
  }
  // The built-in registry takes the platform's internal credentials, derived from the secrets key ring.
  const keyRing =
    config.schemaRegistry.url === '' && !deps.serde
      ? encryptionKeys(config, stackSettings(config).dir, createLogger({ level: 'warn' }))
      : ''
  const serde = deps.serde ?? new AvroSerde(RegistryClient.fromConfig(config, keyRing))
  try {
    await serde.client.request('GET', '/subjects')
  } catch (err) {
    throw new SyndicationError(
      'RETRIABLE',
      `cannot reach the schema registry at ${serde.client.url}: ` +
        `${(err as Error).message}. Check ${registrySetting(config)}`,
      true,
      { field: 'schemaRegistry' },
      { cause: err },
    )
  }
  return serde
}

/** The registered id of a topic's current contract (the platform registers it when it starts). */
async function registeredId(
  serde: AvroSerde,
  config: AppConfig,
  subject: string,
  schema: string,
): Promise<{ id: number; version: number }> {
  try {
    const found = await serde.client.lookup(subject, schema)
    await serde.load(found.id)
    return { id: found.id, version: found.version }
  } catch (err) {
    if (err instanceof DataError) {
      throw new SyndicationError(
        'NOT_FOUND',
        `the schema registry at ${serde.client.url} does not hold the current ` +
          `contract of ${subject}: upgrade the platform and start it once (it ` +
          `registers its contracts) before migrating, and check ` +
          `${registrySetting(config)}`,
        false,
        { subject },
        { cause: err },
      )
    }
    throw err
  }
}

/** The field names of a record type (the version-2 key). */
function fieldNames(type: avro.Type): string[] {
  const fields = (type as unknown as { fields?: Array<{ name: string }> }).fields
  if (!fields || !fields.some((f) => f.name === OWNER_FIELD))
    throw new DataError(`the key contract has no ${OWNER_FIELD} field: nothing to migrate to`, {})
  return fields.map((f) => f.name)
}

/** What tells keys apart once they carry their owner: the version-2 key's fields, with `owner` as manufacturerId. */
function identity(fields: string[], key: Record<string, unknown>, owner: string): string {
  return JSON.stringify(fields.map((f) => (f === OWNER_FIELD ? owner : (key[f] ?? null))))
}

async function topicRanges(admin: Admin, topic: string, from?: Map<number, number>): Promise<ScanRange[]> {
  const offsets = await admin.fetchTopicOffsets(topic)
  return offsets.map((o) => ({
    topic,
    partition: o.partition,
    from: Math.max(Number(o.low), from?.get(o.partition) ?? 0),
    high: Number(o.high),
  }))
}

/** Reads the ranges into the state; returns the high watermark per partition it read up to. */
async function scan(
  kafka: Kafka,
  serde: AvroSerde,
  ranges: ScanRange[],
  fields: string[],
  state: ScanState,
  progress?: ProgressStream,
): Promise<Map<number, number>> {
  const total = ranges.reduce((n, r) => n + Math.max(0, r.high - r.from), 0)
  const bar =
    progress && total > 0
      ? createProgress(`migrate keys: reading ${ranges[0]!.topic}`, { unit: 'records', total, stream: progress })
      : undefined
  let done = 0
  const onMessage = async (r: ScanRange, m: KafkaMessage) => {
    state.scanned++
    if (!m.key) return
    let key: unknown
    try {
      key = await serde.decode(m.key)
    } catch (err) {
      if (err instanceof SyndicationError && err.retriable) throw err // the registry went away: stop, nothing half-done
      state.undecodable++
      return
    }
    if (key === null || typeof key !== 'object') {
      state.undecodable++
      return
    }
    const decoded = key as Record<string, unknown>
    const owner = decoded[OWNER_FIELD]
    if (typeof owner === 'string' && owner !== '') {
      state.v2.add(identity(fields, decoded, owner))
      return
    }
    const id = `${r.partition}|${m.key.toString('base64')}`
    let v1 = state.v1.get(id)
    if (!v1)
      state.v1.set(
        id,
        (v1 = {
          partition: r.partition,
          bytes: Buffer.from(m.key),
          decoded,
          text: JSON.stringify(decoded),
          rows: new Map(),
        }),
      )
    const headers = textHeaders(m.headers)
    const stamp = headers[HEADER.publisherId] ?? ''
    // A tombstone without a stamp deleted the key: whose row it was is unknown, so it ends every row.
    if (m.value === null && stamp === '') v1.rows.clear()
    v1.rows.set(stamp, {
      offset: m.offset,
      timestamp: Number(m.timestamp),
      value: m.value === null ? null : Buffer.from(m.value),
      headers,
    })
  }
  const read = readRanges({
    kafka,
    groupId: `distributary-migrate-keys-${randomUUID()}`,
    ranges,
    label: 'migrate keys scan',
    onMessage,
    onScanned: (n) => bar?.update((done += n)),
  })
  await read.done
  bar?.finish()
  return new Map(ranges.map((r) => [r.partition, r.high]))
}

interface Plan {
  reproduce: Message[]
  tombstones: Message[]
  report: Omit<TopicMigration, 'topic' | 'exists' | 'recordsScanned' | 'undecodableKeys' | 'v2Keys'>
}

/** A plan's report before it looked at any key: nothing to re-produce, skip or tombstone. */
function noChanges(v1Keys: number): Plan['report'] {
  return {
    v1Keys,
    v1KeysLive: 0,
    reproduced: { count: 0, first: [] },
    keptNewer: 0,
    skipped: { count: 0, first: [] },
    tombstonedKeys: 0,
    tombstones: 0,
  }
}

function plan(
  spec: TopicSpec,
  serde: AvroSerde,
  state: ScanState,
  fields: string[],
  ids: { keyId: number; valueVersion: number },
): Plan {
  const report = noChanges(state.v1.size)
  // one re-produced record per version-2 key: the latest by time should a row live in two partitions (partitions added)
  const chosen = new Map<string, { message: Message; timestamp: number; row: MigratedRow & { to: string } }>()
  const tombstones: Message[] = []
  const skip = (row: SkippedRow) => {
    report.skipped.count++
    if (report.skipped.first.length < LISTED) report.skipped.first.push(row)
  }
  for (const v1 of state.v1.values()) {
    const live = [...v1.rows].filter(([, latest]) => latest.value !== null)
    if (live.length === 0) continue
    report.v1KeysLive++
    report.tombstonedKeys++
    // stamped tombstones first, the unstamped one (which ends every row) last
    live.sort(([a], [b]) => (a === '' ? 1 : 0) - (b === '' ? 1 : 0))
    for (const [stamp, latest] of live) {
      const at: MigratedRow = {
        key: v1.text,
        partition: v1.partition,
        offset: latest.offset,
        publisherId: stamp === '' ? null : stamp,
      }
      if (stamp === '')
        skip({ ...at, reason: 'no ce_publisherid stamp: written before the platform stamped the publisher' })
      else {
        let value: unknown
        try {
          value = serde.decodeSync(latest.value!)
        } catch (err) {
          value = undefined
          skip({ ...at, reason: `the value cannot be decoded: ${(err as Error).message}` })
        }
        if (value !== undefined) {
          if (publisherOf({ headers: latest.headers, value, key: null }) !== stamp) {
            skip({
              ...at,
              reason:
                `the value's ${OWNER_FIELD} ` +
                `(${String((value as Record<string, unknown>)[OWNER_FIELD])}) is not the ` +
                `stamp ${stamp}`,
            })
          } else {
            const id = identity(fields, v1.decoded, stamp)
            if (state.v2.has(id)) report.keptNewer++
            else {
              const key = Object.fromEntries(fields.map((f) => [f, f === OWNER_FIELD ? stamp : v1.decoded[f]]))
              let keyBytes: Buffer | undefined
              try {
                keyBytes = serde.encodeSync(ids.keyId, key)
              } catch (err) {
                skip({ ...at, reason: `no version-2 key can be made of it: ${(err as Error).message}` })
              }
              const previous = chosen.get(id)
              if (keyBytes && (!previous || previous.timestamp < latest.timestamp)) {
                const headers: IHeaders = {
                  ...latest.headers,
                  [HEADER.id]: uuidv7(),
                  [MIGRATED_FROM_HEADER]: `${spec.name}/${v1.partition}/${latest.offset}`,
                }
                // a source's resume bookkeeping of the original produce, not part of the event
                delete headers[POSITION_HEADER]
                chosen.set(id, {
                  message: { key: keyBytes, value: latest.value, headers },
                  timestamp: latest.timestamp,
                  row: { ...at, to: JSON.stringify(key) },
                })
              }
            }
          }
        }
      }
      const env = envelope({
        type: latest.headers[HEADER.type] ?? spec.eventTypes[0]!,
        source: MIGRATION_SOURCE,
        schemaSubject: latest.headers[HEADER.schemaSubject] || valueSubject(spec.name),
        schemaVersion:
          Number(latest.headers[HEADER.schemaVersion]) >= 1
            ? Number(latest.headers[HEADER.schemaVersion])
            : ids.valueVersion,
      })
      tombstones.push({
        key: v1.bytes,
        value: null,
        partition: v1.partition,
        headers: { ...toHeaders(env), ...(stamp !== '' ? { [HEADER.publisherId]: stamp } : {}) },
      })
    }
  }
  const reproduce: Message[] = []
  for (const c of chosen.values()) {
    reproduce.push(c.message)
    report.reproduced.count++
    if (report.reproduced.first.length < LISTED) report.reproduced.first.push(c.row)
  }
  report.tombstones = tombstones.length
  return { reproduce, tombstones, report }
}

/** Migrates one topic; see the header. */
async function migrateTopic(
  kafka: Kafka,
  admin: Admin,
  serde: AvroSerde,
  config: AppConfig,
  spec: TopicSpec,
  dryRun: boolean,
  progress?: ProgressStream,
): Promise<TopicMigration> {
  if (!(await admin.listTopics()).includes(spec.name))
    return { topic: spec.name, exists: false, recordsScanned: 0, undecodableKeys: 0, v2Keys: 0, ...noChanges(0) }
  const key = await registeredId(serde, config, keySubject(spec.name), contractSchema(spec.keySchema))
  const value = await registeredId(serde, config, valueSubject(spec.name), contractSchema(spec.valueSchema))
  const fields = fieldNames(await serde.load(key.id))
  const state: ScanState = { v1: new Map(), v2: new Set(), scanned: 0, undecodable: 0 }
  const ends = await scan(kafka, serde, await topicRanges(admin, spec.name), fields, state, progress)
  // publishers keep publishing: what they wrote since the scan decides too (a version-2 key created meanwhile wins)
  if (!dryRun) await scan(kafka, serde, await topicRanges(admin, spec.name, ends), fields, state)
  const p = plan(spec, serde, state, fields, { keyId: key.id, valueVersion: value.version })
  if (!dryRun && p.reproduce.length + p.tombstones.length > 0) {
    const producer = createProducer(kafka, {
      idempotent: true,
      maxInFlightRequests: 1,
    })
    await producer.connect()
    try {
      // every row under its new key first: an interrupted run never leaves a tombstone without its copy
      for (const messages of [p.reproduce, p.tombstones]) {
        for (let i = 0; i < messages.length; i += SEND_BATCH)
          await producer.send({ topic: spec.name, acks: -1, messages: messages.slice(i, i + SEND_BATCH) })
      }
    } finally {
      await producer.disconnect().catch(() => undefined)
    }
  }
  return {
    topic: spec.name,
    exists: true,
    recordsScanned: state.scanned,
    undecodableKeys: state.undecodable,
    v2Keys: state.v2.size,
    ...p.report,
  }
}

/** Runs the migration of the topics (see the file header); throws a SyndicationError naming what is wrong. */
export async function migrateKeys(deps: MigrateKeysDeps, options: MigrateKeysOptions): Promise<MigrationReport> {
  const { config } = deps
  const serde = await platformSerde(deps)
  const kafka = deps.kafka ?? createKafka(config, undefined, `${config.kafka.clientId}-migrate`)
  const admin = createAdmin(kafka)
  try {
    await admin.connect()
  } catch (err) {
    throw new RetriableError(
      `cannot reach Kafka: ${(err as Error).message}. Check KAFKA_BROKERS ` +
        `(kafka.brokers; empty: the local stack) and the KAFKA_SSL / KAFKA_SASL_* ` +
        `settings`,
      undefined,
      { field: 'kafka.brokers' },
      { cause: err },
    )
  }
  try {
    const topics: TopicMigration[] = []
    for (const spec of options.topics)
      topics.push(await migrateTopic(kafka, admin, serde, config, spec, options.dryRun, deps.progress))
    return { dryRun: options.dryRun, topics }
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}
