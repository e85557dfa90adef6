/**
 * From a Kafka message to the SinkRecords the subscriptions receive: the envelope headers, the key
 * and the value decoded once per reader schema (a subscription may pin an older or newer version),
 * shared by every subscription reading with that schema (so a webhook body is serialised once).
 *
 * A message that cannot be decoded (bad envelope, unknown schema, corrupt body) is poison: it still
 * becomes a SinkRecord, in its key's lane, whose delivery fails with the DataError at once, so the
 * delivery queue dead-letters it in order and only then counts its offset as done.
 */
import type avro from 'avsc'
import type { IHeaders, KafkaMessage } from '../../common/kafka/index.ts'
import { DataError, SyndicationError } from '../../common/errors.ts'
import { fromHeaders, type EventEnvelope } from '../../schemas/headers.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { SinkRecord } from './types.ts'

/** The original bytes of a record, for the dead-letter topic and retries. */
export interface RawRecord {
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string>
}

const raws = new WeakMap<SinkRecord, RawRecord>()
const poisons = new WeakMap<SinkRecord, DataError>()
const tombstones = new WeakSet<SinkRecord>()
const tests = new WeakSet<SinkRecord>()

/** A test event (connectors/sink/worker/test-event.ts): an example sent on request; a webhook body says so. */
export function isTestEvent(record: SinkRecord): boolean {
  return tests.has(record)
}

export function markTestEvent(record: SinkRecord): SinkRecord {
  tests.add(record)
  return record
}

export function rawOf(record: SinkRecord): RawRecord | undefined {
  return raws.get(record)
}

/** The reason a record could not be decoded (undefined: it decoded). */
export function poisonOf(record: SinkRecord): DataError | undefined {
  return poisons.get(record)
}

/**
 * A tombstone: a keyed record with a null value (the key was deleted; compaction keeps it for
 * delete.retention.ms). Its SinkRecord has `value: null` and is poison for sinks that deliver events
 * (a webhook has nothing to send: dead letter, as before), but a sink that projects state per key
 * (SinkConnector.acceptsTombstones, e.g. the MongoDB sink) receives it and deletes the key.
 */
export function isTombstone(record: SinkRecord): boolean {
  return tombstones.has(record)
}

/** Why `record` cannot go to a sink (undefined: it can): its poison, unless it is a tombstone the sink accepts. */
export function undeliverable(
  record: SinkRecord,
  sink: { acceptsTombstones?: boolean } | null | undefined,
): DataError | undefined {
  const poison = poisons.get(record)
  if (poison && sink?.acceptsTombstones === true && tombstones.has(record)) return undefined
  return poison
}

/**
 * The record with a projected value (a subscription's grants and fields), still tied to its original
 * bytes, poison and tombstone marks; `fields` are the paths it was projected to (sinks that carry a
 * schema derive the projected one from them).
 */
export function projected(record: SinkRecord, value: unknown, fields: readonly string[] | undefined): SinkRecord {
  const out: SinkRecord = { ...record, value, ...(fields !== undefined ? { fields } : {}) }
  const raw = raws.get(record)
  if (raw) raws.set(out, raw)
  const poison = poisons.get(record)
  if (poison) poisons.set(out, poison)
  if (tombstones.has(record)) tombstones.add(out)
  if (tests.has(record)) tests.add(out)
  return out
}

export function textHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name in h ?? {}) {
    const v = h![name]
    const one = Array.isArray(v) ? v[v.length - 1] : v
    if (one !== undefined) out[name] = Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
  }
  return out
}

/** Schema ids the message refers to that the serde has not loaded yet. */
export function missingSchemas(serde: AvroSerde, message: KafkaMessage): number[] {
  const out: number[] = []
  for (const b of [message.key, message.value]) {
    if (b && b.length >= 5 && b[0] === 0) {
      const id = b.readInt32BE(1)
      if (!serde.isLoaded(id)) out.push(id)
    }
  }
  return out
}

/**
 * Loads the schemas a batch needs (async, before the synchronous hot path). A schema the registry
 * does not know leaves the message to fail as poison; an unreachable registry throws (retriable),
 * so the batch is fetched again.
 */
export async function loadSchemas(serde: AvroSerde, messages: KafkaMessage[], unknown: Set<number>): Promise<void> {
  const ids = new Set<number>()
  for (const m of messages) for (const id of missingSchemas(serde, m)) if (!unknown.has(id)) ids.add(id)
  for (const id of ids) {
    try {
      await serde.load(id)
    } catch (err) {
      if (err instanceof SyndicationError && !err.retriable) unknown.add(id)
      else throw err
    }
  }
}

/** One Kafka message, decoded lazily per reader schema. */
export class DecodedMessage {
  readonly raw: RawRecord
  readonly offset: string
  /** The Kafka record's timestamp (ms). */
  readonly appendedAt: number
  readonly envelope: EventEnvelope | undefined
  readonly envelopeError: DataError | undefined
  readonly key: string | null
  readonly #byReader = new Map<avro.Type | undefined, SinkRecord>()

  constructor(
    private readonly serde: AvroSerde,
    readonly topic: string,
    readonly partition: number,
    message: KafkaMessage,
  ) {
    this.offset = message.offset
    this.appendedAt = Number(message.timestamp)
    this.raw = { key: message.key ?? null, value: message.value ?? null, headers: textHeaders(message.headers) }
    try {
      this.envelope = fromHeaders(message.headers)
    } catch (err) {
      this.envelopeError = err instanceof DataError ? err : new DataError(String(err))
    }
    this.key = displayKey(serde, this.raw.key)
  }

  /** The event type, when the envelope is readable. */
  get eventType(): string | undefined {
    return this.envelope?.type ?? this.raw.headers.ce_type
  }

  /** The SinkRecord for subscriptions reading with `reader` (undefined: the writer's schema). */
  record(reader?: avro.Type): SinkRecord {
    let r = this.#byReader.get(reader)
    if (r) return r
    const ctx = { topic: this.topic, partition: this.partition, offset: this.offset }
    let value: unknown = null
    let error = this.envelopeError
    if (!error) {
      if (this.raw.value === null) error = new DataError('record has no value (a tombstone): nothing to deliver', ctx)
      else {
        try {
          value = this.serde.decodeSync(this.raw.value, reader)
        } catch (err) {
          error =
            err instanceof DataError
              ? err
              : new DataError(`record cannot be decoded: ${(err as Error).message}`, ctx, { cause: err })
        }
      }
    }
    const e = this.envelope
    r = {
      ...ctx,
      key: this.key,
      value,
      headers: this.raw.headers,
      // stable across redeliveries even for poison (no readable id): the position identifies it
      eventId: e?.id ?? `poison-${this.topic}-${this.partition}-${this.offset}`,
      eventType: e?.type ?? this.raw.headers.ce_type ?? 'unknown',
      timestamp: e?.occurredAt.getTime() ?? Date.now(),
      appendedAt: this.appendedAt,
    }
    raws.set(r, this.raw)
    if (this.raw.value === null && this.raw.key !== null) tombstones.add(r)
    if (error) {
      Object.assign(error.context, ctx)
      poisons.set(r, error)
    }
    this.#byReader.set(reader, r)
    return r
  }
}

/** A readable, stable text for a key: the decoded Avro key as JSON, else the bytes in base64. */
export function displayKey(serde: AvroSerde, key: Buffer | null): string | null {
  if (key === null) return null
  if (key.length >= 5 && key[0] === 0 && serde.isLoaded(key.readInt32BE(1))) {
    try {
      const v = serde.decodeSync(key)
      return typeof v === 'string' ? v : JSON.stringify(v)
    } catch {
      /* fall through */
    }
  }
  return key.toString('base64')
}

/** The Kafka message of a stored dead letter (for retry requests). */
export function deadLetterMessage(dl: {
  offset: string
  key: string | null
  value: string | null
  headers: Record<string, string>
}): KafkaMessage {
  return {
    key: dl.key === null ? null : Buffer.from(dl.key, 'base64'),
    value: dl.value === null ? null : Buffer.from(dl.value, 'base64'),
    headers: dl.headers,
    offset: dl.offset,
    timestamp: '0',
    attributes: 0,
    size: 0,
  } as unknown as KafkaMessage
}
