/**
 * MongoDB collection source: publishes the changes of an inventory collection, each document being
 * the current stock position of one key (its fields are the Avro contract's; `_id` and the
 * `updatedAt` field are not). Two modes:
 *
 * - change streams (`mode: 'changeStream'`, or `auto` on a replica set or sharded cluster): the
 *   stream's resume token is the resume point; inserts, updates and replaces are published with the
 *   full document after the change;
 * - polling (`poll`, or `auto` elsewhere, e.g. FerretDB, which has no change streams): documents in
 *   (updatedAt, _id) order after the stored watermark. A document updated twice between two polls is
 *   published once with its latest state (the topic is a state topic; per-key order holds). Deletes
 *   are not seen in this mode, and writers must set updatedAt from a clock that does not run behind
 *   the one of writes already published: `lagMs` only reads documents at least that old, so writes
 *   committed out of order within that margin are not skipped.
 *
 * The resume point is stored in MongoDB (`offsetsCollection`, one document per source) after the
 * broker acked the records; a crash between ack and store is recovered by the runner (positions in
 * headers), so a restart loses and duplicates nothing.
 */
import { BSON, type ChangeStream, type Collection, type Document, type MongoClient, type ResumeToken } from 'mongodb'
import { eventTypeSettings, validateConfig, type ConfigSchema } from '../../connectors/source/config.ts'
import { createConverter, type Converter } from '../../connectors/source/json-avro.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../../connectors/source/types.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { ALL_TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import type { Logger } from '../../common/logger.ts'

const { EJSON } = BSON

export interface MongoSourceConfig {
  database: string
  collection: string
  mode: 'auto' | 'poll' | 'changeStream'
  eventType: string
  topic: string
  updatedAtField: string
  offsetsCollection: string
  batchSize: number
  pollIntervalMs: number
  lagMs: number
}

export const mongoSourceConfigSchema: ConfigSchema = {
  database: { doc: 'Database of the watched collection.', type: 'string' },
  collection: { doc: 'The watched collection.', type: 'string' },
  mode: {
    doc: 'auto (change streams where supported, else polling), poll or changeStream.',
    type: 'string',
    default: 'auto',
    enum: ['auto', 'poll', 'changeStream'],
  },
  ...eventTypeSettings('Event type of the published changes (selects the contract).'),
  updatedAtField: { doc: 'Date field every write sets (polling watermark).', type: 'string', default: 'updatedAt' },
  offsetsCollection: {
    doc: 'Collection (same database) holding the resume point of each source.',
    type: 'string',
    default: 'source_offsets',
  },
  batchSize: { doc: 'Documents per poll.', type: 'integer', default: 1000, min: 1, max: 100_000 },
  pollIntervalMs: { doc: 'Pause between polls that found nothing (ms).', type: 'integer', default: 500, min: 10 },
  lagMs: {
    doc: 'Polling reads only documents whose updatedAt is at least this old (ms).',
    type: 'integer',
    default: 0,
    min: 0,
  },
}

export function parseMongoSourceConfig(raw: unknown): MongoSourceConfig {
  const c = validateConfig<MongoSourceConfig>('mongodb', mongoSourceConfigSchema, raw)
  if (!['auto', 'poll', 'changeStream'].includes(c.mode))
    throw new Error(`mongodb: mode must be auto, poll or changeStream`)
  return { ...c, topic: c.topic || (ALL_TOPICS.find((t) => t.eventTypes.includes(c.eventType))?.name ?? '') }
}

interface Position {
  /** polling: updatedAt (ms) and _id (EJSON) of the last document; change streams: the token. */
  t?: number
  id?: string
  token?: string
}

interface OffsetDoc {
  _id: string
  position: Position | null
  committedAt: Date
}

function compareIds(a: unknown, b: unknown): number {
  const ka =
    typeof a === 'object' && a !== null && 'toHexString' in a ? (a as { toHexString(): string }).toHexString() : a
  const kb =
    typeof b === 'object' && b !== null && 'toHexString' in b ? (b as { toHexString(): string }).toHexString() : b
  if (typeof ka === 'number' && typeof kb === 'number') return ka - kb
  return String(ka) < String(kb) ? -1 : String(ka) > String(kb) ? 1 : 0
}

export class MongoDbSource implements SourceConnector<MongoSourceConfig> {
  readonly kind = 'source' as const
  private config!: MongoSourceConfig
  private log!: Logger
  private name = ''
  private converter!: Converter
  private keyFields: string[] = []
  /** The organization the source publishes for (its owner): fills and checks each document's manufacturerId. */
  private publisherId: string | undefined
  /** Documents refused since start (they do not match the contract or name another manufacturer). */
  readonly refused = { count: 0, last: null as null | { id: string; reason: string; at: Date } }
  private coll!: Collection
  private offsets!: Collection<OffsetDoc>
  private watermark: Position | null = null
  private committedAt = 0
  private stream: ChangeStream | undefined
  private idleUntil = 0
  private mode: 'poll' | 'changeStream' = 'poll'

  constructor(
    private readonly client: MongoClient,
    private readonly topics: readonly TopicSpec[] = ALL_TOPICS,
  ) {}

  get activeMode(): 'poll' | 'changeStream' {
    return this.mode
  }

  async start(config: MongoSourceConfig, ctx: SourceContext): Promise<void> {
    this.config = config
    this.name = ctx.name
    this.publisherId = ctx.publisherId
    this.log = ctx.logger.child({ component: 'mongodb-source', collection: `${config.database}.${config.collection}` })
    const spec =
      this.topics.find((t) => t.name === config.topic) ??
      ALL_TOPICS.find((t) => t.eventTypes.includes(config.eventType))
    if (!spec) throw new Error(`mongodb source: no topic for event type ${config.eventType}`)
    this.converter = createConverter(contractSchema(spec.valueSchema))
    this.keyFields = (JSON.parse(contractSchema(spec.keySchema)) as { fields: Array<{ name: string }> }).fields.map(
      (f) => f.name,
    )
    const db = this.client.db(config.database)
    this.coll = db.collection(config.collection)
    this.offsets = db.collection<OffsetDoc>(config.offsetsCollection)
    const stored = await this.offsets.findOne({ _id: this.name })
    if (stored) {
      this.watermark = stored.position
      this.committedAt = stored.committedAt.getTime()
    } else {
      // Stored before anything is produced, so that recovery knows where to look after a crash.
      this.committedAt = Date.now()
      await this.offsets.replaceOne(
        { _id: this.name },
        { position: null, committedAt: new Date(this.committedAt) },
        { upsert: true },
      )
    }
    this.mode = config.mode === 'auto' ? ((await this.supportsChangeStreams()) ? 'changeStream' : 'poll') : config.mode
    if (this.mode === 'changeStream') {
      const token = this.watermark?.token ? (EJSON.parse(this.watermark.token) as ResumeToken) : undefined
      this.stream = this.coll.watch([{ $match: { operationType: { $in: ['insert', 'update', 'replace'] } } }], {
        fullDocument: 'updateLookup',
        ...(token ? { resumeAfter: token } : {}),
      })
    }
    this.log.info('mongodb source started', { mode: this.mode, watermark: this.watermark })
  }

  private async supportsChangeStreams(): Promise<boolean> {
    try {
      const hello = await this.client.db('admin').command({ hello: 1 })
      return typeof hello.setName === 'string' || hello.msg === 'isdbgrid'
    } catch {
      return false
    }
  }

  recovery(): { sinceMs: number; topics: string[] } | undefined {
    return { sinceMs: this.committedAt, topics: [this.config.topic] }
  }

  async reconcile(positions: unknown[]): Promise<void> {
    if (positions.length === 0) return
    if (this.mode === 'changeStream') {
      // The stream resumes from the stored token; events acked but not committed before a crash
      // are published again in this mode (at-least-once; the event ids differ, sequence does not).
      return
    }
    let best = this.watermark
    for (const p of positions as Position[]) {
      if (p.t === undefined) continue
      if (
        !best ||
        best.t === undefined ||
        p.t > best.t ||
        (p.t === best.t && compareIds(EJSON.parse(p.id!), EJSON.parse(best.id!)) > 0)
      )
        best = p
    }
    if (best !== this.watermark) {
      this.log.info('moving past changes acked before the crash but not committed', { from: this.watermark, to: best })
      await this.store(best)
      this.watermark = best
    }
  }

  async poll(): Promise<SourceRecord[]> {
    if (Date.now() < this.idleUntil) return []
    const out = this.mode === 'changeStream' ? await this.pollStream() : await this.pollCollection()
    if (out.length === 0) this.idleUntil = Date.now() + this.config.pollIntervalMs
    return out
  }

  private async pollCollection(): Promise<SourceRecord[]> {
    const f = this.config.updatedAtField
    const conds: Document[] = []
    const w = this.watermark
    if (w?.t !== undefined) {
      const t = new Date(w.t)
      conds.push({ $or: [{ [f]: { $gt: t } }, { [f]: t, _id: { $gt: EJSON.parse(w.id!) } }] })
    } else conds.push({ [f]: { $exists: true } })
    if (this.config.lagMs > 0) conds.push({ [f]: { $lte: new Date(Date.now() - this.config.lagMs) } })
    const docs = await this.coll
      .find(conds.length === 1 ? conds[0]! : { $and: conds })
      .sort({ [f]: 1, _id: 1 })
      .limit(this.config.batchSize)
      .toArray()
    const out: SourceRecord[] = []
    let skipped: Position | undefined
    for (const doc of docs) {
      const at = doc[f] as Date
      const position: Position = { t: at.getTime(), id: EJSON.stringify(doc._id, { relaxed: false }) }
      const rec = this.toRecord(doc, at, position)
      if (rec) out.push(rec)
      else skipped = position
      this.watermark = position
    }
    // Only invalid documents in this poll: nothing to produce, but move past them.
    if (out.length === 0 && skipped) await this.store(skipped)
    return out
  }

  private async pollStream(): Promise<SourceRecord[]> {
    const out: SourceRecord[] = []
    while (out.length < this.config.batchSize) {
      const change = (await this.stream!.tryNext()) as (Document & { _id: ResumeToken; fullDocument?: Document }) | null
      if (!change) break
      const doc = change.fullDocument
      if (!doc) continue
      const at =
        doc[this.config.updatedAtField] instanceof Date ? (doc[this.config.updatedAtField] as Date) : new Date()
      const rec = this.toRecord(doc, at, { token: EJSON.stringify(change._id, { relaxed: false }) })
      if (rec) out.push(rec)
    }
    return out
  }

  private toRecord(doc: Document, at: Date, position: Position): SourceRecord | undefined {
    const obj: Record<string, unknown> = {}
    for (const field of this.converter.fields) {
      let v = doc[field]
      if (v instanceof Date) v = v.getTime()
      else if (v !== null && typeof v === 'object' && typeof (v as { toNumber?: unknown }).toNumber === 'function')
        v = (v as { toNumber(): number }).toNumber() // Long
      if (v !== undefined) obj[field] = v
    }
    obj.sequence ??= at.getTime()
    obj.occurredAt ??= at.getTime()
    if (this.publisherId !== undefined && this.converter.fields.includes('manufacturerId'))
      obj.manufacturerId ??= this.publisherId
    const r = this.converter.convert(obj)
    if (r.faults.length > 0) {
      this.refuse(doc, `does not match the contract: ${r.faults.map((f) => `${f.path} ${f.message}`).join('; ')}`)
      return undefined
    }
    const value = r.value as Record<string, unknown>
    if (this.publisherId !== undefined && 'manufacturerId' in value && value.manufacturerId !== this.publisherId) {
      // The platform stamps the publisher; a document naming another manufacturer is refused, never believed.
      this.refuse(
        doc,
        `manufacturerId names ${String(value.manufacturerId)}, but this source publishes for ${this.publisherId}`,
      )
      return undefined
    }
    const key: Record<string, unknown> = {}
    for (const k of this.keyFields) key[k] = value[k]
    return {
      topic: this.config.topic,
      key,
      value,
      type: this.config.eventType,
      occurredAt: new Date(value.occurredAt as number),
      position,
    }
  }

  /** A document that is not produced: skipped (the watermark moves past it), logged with the reason and counted. */
  private refuse(doc: Document, reason: string): void {
    const id = String(doc._id)
    this.refused.count++
    this.refused.last = { id, reason, at: new Date() }
    this.log.warn('document refused; skipped', { code: 'DATA_INVALID', stage: 'convert', id, reason })
  }

  async commit(records: SourceRecord[]): Promise<void> {
    const last = records[records.length - 1]?.position as Position | undefined
    if (last) await this.store(last)
  }

  private async store(position: Position | null): Promise<void> {
    const now = Date.now()
    await this.offsets.replaceOne({ _id: this.name }, { position, committedAt: new Date(now) }, { upsert: true })
    this.committedAt = now
  }

  /** The stored watermark (polling) or resume token (change streams), and the mode (status reports). */
  position(): {
    mode: 'poll' | 'changeStream'
    watermark: Position | null
    refused: { count: number; last: { id: string; reason: string; at: string } | null }
  } {
    const last = this.refused.last
    return {
      mode: this.mode,
      watermark: this.watermark,
      refused: { count: this.refused.count, last: last && { ...last, at: last.at.toISOString() } },
    }
  }

  async stop(): Promise<void> {
    await this.stream?.close().catch(() => undefined)
    this.stream = undefined
  }
}
