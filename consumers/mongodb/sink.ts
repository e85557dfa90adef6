/**
 * The MongoDB projection sink: each key's latest state, upserted into a collection of the partner's
 * own database.
 *
 * Document: `_id` = the record key (its text: the Avro key as JSON, e.g. {"sku":"A","locationId":"W"}),
 * the value's fields, and `_meta`: { version, topic, partition, eventId, eventType, occurredAt, writtenAt }.
 * A tombstone (a keyed record with a null value) deletes the document.
 *
 * THE VERSION is the record's Kafka offset, compared within its topic-partition. Why not the
 * payload's `sequence`: not every event type has one, a grant may project it out (the partner never
 * receives it), a tombstone has no payload at all, and a publisher can reset it (a source system
 * restored from backup); the offset exists for every record, is what the runtime orders deliveries
 * by, never changes for a record (a replay re-delivers the same offsets, so an offset reset to
 * earliest rewrites nothing newer), and increases per key because a key stays on its partition.
 * Its limit: offsets of two partitions are not comparable. A key changes partition only when a
 * topic's partition count changes; then the event time (occurredAt) decides between a stored
 * document from another topic-partition and the incoming record (newer wins). Offsets are far below
 * 2^53, so a JS number holds them exactly.
 *
 * THE GUARD is one conditional write per record, correct without transactions (FerretDB v1) and
 * on MongoDB: replaceOne({ _id, <stored version older> }, doc, { upsert: true }). An older stored
 * version matches and is replaced; no document inserts; a newer or equal one does not match, so the
 * upsert tries to insert that `_id` and the unique _id index refuses it (E11000): "stale, skip".
 * Single-document unique-key inserts are atomic on both servers. Concurrent updates of one document
 * are not isolated on FerretDB, so the sink relies on the runtime never running two writes of one
 * key at a time: the delivery queue runs one lane per (topic, key), and a subscription of this sink
 * reads one topic (the factory refuses more), so one _id has one writer. Tombstones:
 * deleteOne({ _id, <stored version older> }). A duplicate-key error can also come from a unique
 * index of the partner's: FerretDB does not say which index, so the sink reads the stored version
 * and only calls the write stale when that version really is newer or equal; otherwise the partner
 * refused the document (DataError).
 *
 * Redelivery (at least once) and replays are no-ops on newer state. A replay that passes a key's
 * tombstone may briefly re-create the key (the deleted document left no version behind) until it
 * reaches the tombstone again, which deletes it: the end state is the latest state per key.
 */
import { DataError, RetriableError, type FieldProblem } from '../../common/errors.ts'
import { checkSinkConfig } from '../sinks.ts'
import type { AttemptReport, PutOptions, SinkConnector, SinkContext, SinkRecord } from '../../connectors/sink/types.ts'
import type { Collection, Document, Filter } from 'mongodb'
import type { MongoClientPool, MongoLease } from './client-pool.ts'
import { classifyMongoError, isDuplicateKeyError } from './errors.ts'

export interface MongoSinkConfig {
  connectionString: string
  database: string
  collection: string
}

export type { FieldProblem }

/** The metadata field of every projected document. */
export const META_FIELD = '_meta'

export interface ProjectionMeta {
  /** The Kafka offset (see the header: the version). */
  version: number
  topic: string
  partition: number
  eventId: string
  eventType: string
  occurredAt: Date
  writtenAt: Date
}

export interface ProjectedDocument extends Document {
  _id: string
  _meta: ProjectionMeta
}

/** A projection collection: string `_id`s (the keys). */
export type ProjectionCollection = Collection<{ _id: string; [field: string]: unknown }>
type KeyFilter = Filter<{ _id: string; [field: string]: unknown }>

// eslint-disable-next-line no-control-regex -- NUL is one of the characters MongoDB forbids in a database name
const DB_FORBIDDEN = /[/\\. "$*<>:|?\u0000]/

/** Every problem with a MongoDB sink configuration, each naming its field (for RFC 9457 answers). */
export function mongoSinkConfigProblems(config: unknown): FieldProblem[] {
  if (config === null || typeof config !== 'object') return [{ field: 'sink', message: 'must be an object' }]
  const c = config as Partial<Record<keyof MongoSinkConfig, unknown>>
  const out: FieldProblem[] = []
  if (typeof c.connectionString !== 'string' || !/^mongodb(\+srv)?:\/\/\S+$/.test(c.connectionString)) {
    out.push({ field: 'connectionString', message: 'is required: a mongodb:// or mongodb+srv:// connection string' })
  }
  if (typeof c.database !== 'string' || c.database === '') out.push({ field: 'database', message: 'is required' })
  else if (Buffer.byteLength(c.database) > 63) out.push({ field: 'database', message: 'must be at most 63 bytes' })
  else if (DB_FORBIDDEN.test(c.database))
    out.push({ field: 'database', message: 'must not contain / \\ . space " $ * < > : | ? or NUL' })
  if (typeof c.collection !== 'string' || c.collection === '') out.push({ field: 'collection', message: 'is required' })
  else if (Buffer.byteLength(c.collection) > 120)
    out.push({ field: 'collection', message: 'must be at most 120 bytes' })
  else if (c.collection.includes('$') || c.collection.includes('\u0000'))
    out.push({ field: 'collection', message: 'must not contain $ or NUL' })
  else if (c.collection.startsWith('system.'))
    out.push({ field: 'collection', message: 'must not start with "system." (reserved by MongoDB)' })
  return out
}

/** The filter that matches the stored document of `id` only when `m` supersedes it (see the header). */
export function supersedeFilter(
  id: string,
  m: Pick<ProjectionMeta, 'version' | 'topic' | 'partition' | 'occurredAt'>,
): KeyFilter {
  return {
    _id: id,
    $or: [
      { '_meta.topic': m.topic, '_meta.partition': m.partition, '_meta.version': { $lt: m.version } },
      {
        $or: [{ '_meta.topic': { $ne: m.topic } }, { '_meta.partition': { $ne: m.partition } }],
        '_meta.occurredAt': { $lt: m.occurredAt },
      },
      // a document this sink did not write (no version): the projection owns the collection
      { '_meta.version': { $exists: false } },
    ],
  }
}

/** The same decision in code, for a stored `_meta` (undefined: nothing stored, or not ours). */
export function supersedes(
  m: Pick<ProjectionMeta, 'version' | 'topic' | 'partition' | 'occurredAt'>,
  stored: Partial<ProjectionMeta> | undefined,
): boolean {
  if (!stored || stored.version === undefined) return true
  if (stored.topic === m.topic && stored.partition === m.partition) return stored.version < m.version
  return stored.occurredAt instanceof Date && stored.occurredAt.getTime() < m.occurredAt.getTime()
}

export type WriteOutcome = 'inserted' | 'replaced' | 'deleted' | 'stale' | 'absent'

export class MongoProjectionSink implements SinkConnector<MongoSinkConfig> {
  readonly kind = 'sink' as const
  readonly acceptsTombstones = true
  #lease?: MongoLease
  #collection?: ProjectionCollection
  #ctx?: SinkContext
  #target = ''
  /** Consecutive stale writes (a replay): > 0 turns on the read-first shortcut in write(). */
  #staleStreak = 0

  constructor(
    private readonly pool: MongoClientPool,
    private readonly now: () => number = Date.now,
  ) {}

  /** Validates, then acquires the shared client of the connection string (connected, hosts guarded). */
  async start(config: MongoSinkConfig, ctx: SinkContext): Promise<void> {
    const problems = mongoSinkConfigProblems(config).map((p) => ({ ...p, field: `sink.${p.field}` }))
    checkSinkConfig('mongodb', problems, ctx)
    await this.#releaseLease()
    const lease = await this.pool.acquire(config.connectionString, { subscriptionId: ctx.subscriptionId })
    this.#lease = lease
    this.#ctx = ctx
    this.#collection = lease.client
      .db(config.database)
      .collection<{ _id: string; [field: string]: unknown }>(config.collection)
    this.#target = `${lease.connection.display}/${config.database}.${config.collection}`
  }

  /** Where this sink writes, without credentials (for the delivery log). */
  get target(): string {
    return this.#target
  }

  async put(records: SinkRecord[], options: PutOptions = {}): Promise<void> {
    const collection = this.#collection
    const ctx = this.#ctx
    const lease = this.#lease
    if (!collection || !ctx || !lease) throw new Error('MongoProjectionSink.put called before start')
    for (const record of records) {
      const startedAt = this.now()
      const t0 = performance.now()
      const report: AttemptReport = {
        eventId: record.eventId,
        target: this.#target,
        startedAt,
        durationMs: 0,
        outcome: 'failed',
      }
      try {
        if (options.signal?.aborted)
          throw new RetriableError('delivery aborted (subscription stopped)', undefined, { aborted: true })
        lease.ensureSafe()
        const outcome = await this.write(collection, record)
        report.outcome = 'delivered'
        report.responseExcerpt =
          outcome === 'stale'
            ? 'stale: a newer version is stored; skipped'
            : outcome === 'absent'
              ? 'tombstone: no older document to delete'
              : outcome
      } catch (err) {
        const context = {
          subscriptionId: ctx.subscriptionId,
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          eventId: record.eventId,
          target: this.#target,
        }
        const error = classifyMongoError(err, 'write', context, lease.secrets)
        Object.assign(error.context, context)
        report.outcome = error.code === 'SINK_ENDPOINT_DISABLED' ? 'disabled' : error.retriable ? 'retriable' : 'failed'
        report.code = error.code
        report.message = error.message
        report.durationMs = Math.round((performance.now() - t0) * 10) / 10
        ctx.onAttempt?.(report)
        throw error
      }
      report.durationMs = Math.round((performance.now() - t0) * 10) / 10
      ctx.onAttempt?.(report)
    }
  }

  /**
   * One record, one conditional write (plus a read after a duplicate-key refusal, or before the write during a replay).
   */
  async write(collection: ProjectionCollection, record: SinkRecord): Promise<WriteOutcome> {
    if (record.key === null)
      throw new DataError('record has no key: a projection stores one document per key', { eventId: record.eventId })
    const meta: ProjectionMeta = {
      version: Number(record.offset),
      topic: record.topic,
      partition: record.partition,
      eventId: record.eventId,
      eventType: record.eventType,
      occurredAt: new Date(record.timestamp),
      writtenAt: new Date(this.now()),
    }
    if (!Number.isSafeInteger(meta.version))
      throw new DataError(`offset ${record.offset} is not a safe integer version`, { offset: record.offset })
    const filter = supersedeFilter(record.key, meta)
    // Replay shortcut: after a stale write, read the stored version first and skip without writing
    // while records keep being stale (on FerretDB a refused upsert costs about 10x a read). Safe:
    // a stored version only ever grows, so a write the read calls stale would be refused anyway;
    // the conditional write stays the guard for every record that is written.
    if (this.#staleStreak > 0) {
      const stored = await collection.findOne({ _id: record.key }, { projection: { [META_FIELD]: 1 } })
      const storedMeta = stored?.[META_FIELD] as Partial<ProjectionMeta> | undefined
      if (stored && storedMeta?.version !== undefined && !supersedes(meta, storedMeta)) {
        this.#staleStreak++
        return 'stale'
      }
      this.#staleStreak = 0
    }
    const outcome = await this.#conditionalWrite(collection, record as SinkRecord & { key: string }, meta, filter)
    this.#staleStreak = outcome === 'stale' ? this.#staleStreak + 1 : 0
    return outcome
  }

  async #conditionalWrite(
    collection: ProjectionCollection,
    record: SinkRecord & { key: string },
    meta: ProjectionMeta,
    filter: KeyFilter,
  ): Promise<WriteOutcome> {
    if (record.value === null) {
      const r = await collection.deleteOne(filter)
      return r.deletedCount === 1 ? 'deleted' : 'absent'
    }
    const doc = projectedDocument(record, meta)
    try {
      const r = await collection.replaceOne(filter, doc, { upsert: true })
      return r.upsertedCount === 1 ? 'inserted' : 'replaced'
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err
      const pattern = (err as { keyPattern?: Record<string, unknown> }).keyPattern
      const onId = pattern !== undefined && Object.keys(pattern).length === 1 && '_id' in pattern
      if (onId) return 'stale'
      // FerretDB names no index: stale only if what is stored really is as new or newer
      const stored = await collection.findOne({ _id: record.key }, { projection: { [META_FIELD]: 1 } })
      if (stored && !supersedes(meta, stored[META_FIELD] as Partial<ProjectionMeta> | undefined)) return 'stale'
      throw new DataError(
        `the partner's collection refused the document: a unique index other than ` +
          `_id already holds one of its values (${(err as Error).message})`,
        { eventId: record.eventId },
      )
    }
  }

  async stop(): Promise<void> {
    this.#collection = undefined
    await this.#releaseLease()
  }

  async #releaseLease(): Promise<void> {
    const lease = this.#lease
    this.#lease = undefined
    await lease?.release()
  }
}

/** The document of a record: its value's fields, `_id` the key, `_meta` the version and event. */
export function projectedDocument(record: SinkRecord, meta: ProjectionMeta): ProjectedDocument {
  const v = record.value
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v) || v instanceof Date) {
    throw new DataError(
      `event ${record.eventId} has a value that is not a record: a projection stores the fields of a record`,
      { eventId: record.eventId },
    )
  }
  const fields = { ...(v as Record<string, unknown>) }
  for (const reserved of ['_id', META_FIELD]) {
    if (reserved in fields)
      throw new DataError(`event ${record.eventId} has a field named ${reserved}, which the projection reserves`, {
        eventId: record.eventId,
        field: reserved,
      })
  }
  return { _id: record.key!, ...fields, [META_FIELD]: meta } as ProjectedDocument
}
