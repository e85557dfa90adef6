/**
 * The kafka-topic sink (docs/partner-topics.md): a partner's subscription written into a topic of its
 * own on the platform's cluster, which the partner reads with its own Kafka client and SCRAM user.
 *
 * - The topic mirrors its source topic: the same partition count, the record in the same partition
 *   (so per-key order is the source's), compacted when the source is; created at start if missing.
 * - Values are Avro in the Confluent wire format, in the schema the partner reads: the pinned
 *   version (or the writer's), projected to the fields its grants and subscription keep
 *   (schema-projection.ts), registered under the partner topic's value subject. Keys keep their
 *   bytes, their schema registered under the key subject (same schema, same id).
 * - Tombstones are passed on (null value), so a compacted partner topic forgets deleted keys too.
 * - The headers are the event's, with the trace context as a webhook sends it (docs/tracing.md): the
 *   delivery attempt's traceparent with tracing on, no tracestate (the publisher's vendors' entries).
 * - `put` resolves once the partner topic acknowledged every record (acks=all, idempotent producer),
 *   and only then does the runtime move the subscription's position: at least once.
 */
import type { Admin, Message } from '../../common/kafka/index.ts'
import { DataError, RetriableError, SyndicationError } from '../../common/errors.ts'
import type { PutOptions, SinkConnector, SinkContext, SinkRecord } from '../../connectors/sink/types.ts'
import { isTombstone, rawOf } from '../../connectors/sink/records.ts'
import { createTopicsReady } from '../../common/kafka/index.ts'
import { AvroSerde } from '../../schemas/serde/serde.ts'
import { keySubject, valueSubject } from '../../schemas/topics.ts'
import { projectSchema } from './schema-projection.ts'
import { activeSpan, headersOf } from '../../common/tracing.ts'

export interface KafkaTopicSinkConfig {
  /** The partner topic. */
  topic: string
  /** The platform topic the subscription reads. */
  sourceTopic: string
  /** The pinned reader version of the source topic's value subject (absent: each record's writer schema). */
  pinnedVersion?: number
}

/**
 * What every kafka-topic sink of a worker shares: one producer (group commit, re-created after a failed send), one
 * admin.
 */
export interface PartnerTopicWriter {
  /** Resolves when the partner topic acknowledged every message (acks=all). */
  send(topic: string, messages: Message[]): Promise<void>
  /**
   * Runs the preparation of one partner topic (creation, subject config) with an admin client, after the others: see
   * SharedPartnerTopicWriter.
   */
  preparing<T>(task: (admin: Admin) => Promise<T>): Promise<T>
  serde: AvroSerde
}

export class KafkaTopicSink implements SinkConnector<KafkaTopicSinkConfig> {
  readonly kind = 'sink' as const
  readonly acceptsTombstones = true
  /** The partner topic is the record of what was delivered: the delivery log keeps failures only. */
  readonly recordsDeliveries = true
  #config!: KafkaTopicSinkConfig
  #ctx!: SinkContext
  #partitions = 0
  /** (source schema id or pinned, projection) → partner schema id. */
  readonly #valueIds = new Map<string, number>()
  /** Source key schema id → the id under the partner key subject. */
  readonly #keyIds = new Map<number, number>()

  constructor(private readonly writer: PartnerTopicWriter) {}

  async start(config: KafkaTopicSinkConfig, ctx: SinkContext): Promise<void> {
    this.#config = config
    this.#ctx = ctx
    try {
      await this.writer.preparing((admin) => this.#prepare(admin, config))
    } catch (err) {
      throw err instanceof SyndicationError
        ? err
        : new RetriableError(
            `partner topic ${config.topic} could not be prepared: ${(err as Error).message}`,
            undefined,
            { topic: config.topic },
            { cause: err },
          )
    }
  }

  async #prepare(admin: Admin, config: KafkaTopicSinkConfig): Promise<void> {
    const meta = await admin.fetchTopicMetadata({ topics: [config.sourceTopic] })
    this.#partitions = meta.topics[0]!.partitions.length
    const described = await admin.describeConfigs({
      resources: [{ type: 2, name: config.sourceTopic, configNames: ['cleanup.policy'] }],
      includeSynonyms: false,
    })
    const cleanup =
      described.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue ?? 'delete'
    await createTopicsReady(admin, [
      {
        topic: config.topic,
        numPartitions: this.#partitions,
        configEntries: [{ name: 'cleanup.policy', value: cleanup }],
      },
    ])
    // The partner topic's subjects follow its projection, which changes with the grants: the
    // partner's deserializer reads each record with its own writer schema id, so no compatibility
    // rule between versions is needed there, and one would stop delivery when a grant changes.
    for (const subject of [valueSubject(config.topic), keySubject(config.topic)]) {
      await this.writer.serde.client.request('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: 'NONE' })
    }
  }

  /** The partner schema id for a record's value (registered on first use). */
  async #valueSchemaId(record: SinkRecord, sourceId: number): Promise<number> {
    const { serde } = this.writer
    const source = this.#config.pinnedVersion !== undefined ? `v${this.#config.pinnedVersion}` : `id${sourceId}`
    const memo = `${source}|${record.fields === undefined ? '*' : [...record.fields].sort().join(',')}`
    const known = this.#valueIds.get(memo)
    if (known !== undefined) return known
    const found =
      this.#config.pinnedVersion !== undefined
        ? await serde.client.getVersion(valueSubject(this.#config.sourceTopic), this.#config.pinnedVersion)
        : await serde.client.getSchemaById(sourceId)
    let schema: unknown
    if ((found.references ?? []).length > 0) {
      // a schema with references: inlined by avsc (its export keeps the fields, docs and defaults)
      const type =
        this.#config.pinnedVersion !== undefined
          ? await serde.load(await serde.idOf(valueSubject(this.#config.sourceTopic), this.#config.pinnedVersion))
          : await serde.load(sourceId)
      schema = (type as unknown as { schema(o: object): unknown }).schema({ exportAttrs: true })
    } else schema = JSON.parse(found.schema)
    const projected = projectSchema(schema as never, record.fields)
    const id = await serde.register(valueSubject(this.#config.topic), JSON.stringify(projected))
    this.#valueIds.set(memo, id)
    return id
  }

  /** The key bytes for the partner topic: the same Avro key, its schema id as registered under the key subject. */
  async #key(raw: Buffer | null): Promise<Buffer | null> {
    if (raw === null || raw.length < 5 || raw[0] !== 0) return raw
    const sourceId = raw.readInt32BE(1)
    let id = this.#keyIds.get(sourceId)
    if (id === undefined) {
      const { serde } = this.writer
      const found = await serde.client.getSchemaById(sourceId)
      id = await serde.register(keySubject(this.#config.topic), found.schema, found.references ?? [])
      this.#keyIds.set(sourceId, id)
    }
    if (id === sourceId) return raw
    const out = Buffer.from(raw)
    out.writeInt32BE(id, 1)
    return out
  }

  async put(records: SinkRecord[], _options?: PutOptions): Promise<void> {
    const messages: Message[] = []
    for (const r of records) {
      const raw = rawOf(r)
      const key = await this.#key(raw?.key ?? null)
      let value: Buffer | null = null
      if (!isTombstone(r)) {
        if (!raw?.value || raw.value.length < 5)
          throw new DataError('record has no Avro value to write to the partner topic', { eventId: r.eventId })
        const id = await this.#valueSchemaId(r, raw.value.readInt32BE(1))
        value = await this.writer.serde.encode(id, r.value)
      }
      messages.push({
        key,
        value,
        partition: r.partition % Math.max(1, this.#partitions),
        headers: partnerHeaders(r.headers),
      })
    }
    const started = Date.now()
    try {
      await this.writer.send(this.#config.topic, messages)
    } catch (err) {
      for (const r of records) this.#report(r, started, 'retriable', err)
      throw new RetriableError(
        `partner topic ${this.#config.topic} did not acknowledge: ${(err as Error).message}`,
        undefined,
        { topic: this.#config.topic },
        { cause: err },
      )
    }
    for (const r of records) this.#report(r, started, 'delivered')
  }

  #report(r: SinkRecord, startedAt: number, outcome: 'delivered' | 'retriable', err?: unknown): void {
    this.#ctx.onAttempt?.({
      eventId: r.eventId,
      target: `kafka:${this.#config.topic}`,
      startedAt,
      durationMs: Date.now() - startedAt,
      outcome,
      ...(err ? { code: 'RETRIABLE', message: (err as Error).message } : {}),
    })
  }

  async stop(): Promise<void> {}
}

/** The event's headers as the partner receives them: see the header comment. */
function partnerHeaders(headers: Record<string, string>): Record<string, string> {
  const span = activeSpan()
  if (span === undefined && headers.tracestate === undefined) return headers
  const out = { ...headers }
  delete out.tracestate
  if (span) out.traceparent = headersOf(span.spanContext()).traceparent
  return out
}
