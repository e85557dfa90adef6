/**
 * The envelope of every event, carried as Kafka headers in CloudEvents' Kafka protocol binding
 * (binary content mode: `ce_` attributes, `content-type`), so that any CloudEvents-aware consumer
 * understands it, plus the W3C Trace Context `traceparent` (and `tracestate`) headers that
 * OpenTelemetry's Kafka instrumentation propagates, which are also CloudEvents' distributed tracing
 * extension in the Kafka binding (docs/tracing.md). The schema subject and version are CloudEvents
 * extension attributes.
 */
import { randomFillSync } from 'node:crypto'
import type { IHeaders } from '../common/kafka/index.ts'
import { DataError } from '../common/errors.ts'

export interface EventEnvelope {
  /** UUIDv7: unique, time-ordered; the idempotency key partners see on every retry. */
  id: string
  /** e.g. `inventory.level.changed` (see schemas/topics.ts for each topic's types). */
  type: string
  /** URI reference of the producer, e.g. `/manufacturers/acme/erp`. */
  source: string
  /** When it happened in the source system. */
  occurredAt: Date
  schemaSubject: string
  schemaVersion: number
  /** W3C traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>. */
  traceparent: string
}

export const HEADER = {
  specVersion: 'ce_specversion',
  id: 'ce_id',
  type: 'ce_type',
  source: 'ce_source',
  time: 'ce_time',
  contentType: 'content-type',
  schemaSubject: 'ce_schemasubject',
  schemaVersion: 'ce_schemaversion',
  traceparent: 'traceparent',
  /** W3C Trace Context vendor entries that came with the traceparent (only when there are some). */
  tracestate: 'tracestate',
  /**
   * CloudEvents extension: the organization that published the event (set by ingestion from the
   * authenticated publisher; the sink runtime ties the event to that publisher's grants).
   */
  publisherId: 'ce_publisherid',
} as const

/** Media type of a Confluent-framed Avro value. */
export const AVRO_CONTENT_TYPE = 'application/vnd.confluent.avro'

/**
 * Random bytes for ids and trace contexts, taken from a pool filled 4 KiB at a time: one
 * randomBytes(10) call costs about as much as the rest of a small event's ingest bookkeeping, and
 * the ingest makes ids at the rate events arrive. Copies, so no two callers share memory.
 */
const POOL_SIZE = 4096
const pool = Buffer.allocUnsafe(POOL_SIZE)
let poolAt = POOL_SIZE
function randomBytes(n: number): Buffer {
  if (poolAt + n > POOL_SIZE) {
    randomFillSync(pool)
    poolAt = 0
  }
  const out = Buffer.allocUnsafe(n)
  pool.copy(out, 0, poolAt, poolAt + n)
  pool.fill(0, poolAt, poolAt + n) // a byte handed out is not kept around
  poolAt += n
  return out
}

/** The last id made (its 16 bytes), the state of the within-a-millisecond increment. */
const last = Buffer.alloc(16)
let lastMs = -1
/** The text form of an id is written here as ASCII, with the dashes in place. */
const text = Buffer.from('00000000-0000-7000-8000-000000000000', 'latin1')
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1')
/** Where each of the 16 bytes goes in the text form. */
const TEXT_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]

/** Adds one to the 74 random bits of `last`; false when they were all ones (the millisecond is used up). */
function incrementLast(): boolean {
  for (let i = 15; i >= 9; i--) {
    last[i] = (last[i]! + 1) & 0xff
    if (last[i] !== 0) return true
  }
  if ((last[8]! & 0x3f) !== 0x3f) return ((last[8]! += 1), true)
  last[8] = 0x80
  if (last[7] !== 0xff) return ((last[7]! += 1), true)
  last[7] = 0
  if ((last[6]! & 0x0f) !== 0x0f) return ((last[6]! += 1), true)
  return false
}

/**
 * RFC 9562 UUID version 7: 48-bit Unix milliseconds, version, 74 random bits. Within one millisecond
 * the random bits of the previous id are incremented (RFC 9562 6.2 method 2), so ids made by this
 * process sort in creation order. Written as text through one reused ASCII buffer: the ingest makes
 * one id per accepted event.
 */
export function uuidv7(now = Date.now()): string {
  if (now <= lastMs && incrementLast()) now = lastMs
  else {
    if (now <= lastMs) now = lastMs + 1 // 2^74 ids in one millisecond: borrow the next one
    if (poolAt + 10 > POOL_SIZE) {
      randomFillSync(pool)
      poolAt = 0
    }
    last.writeUIntBE(now, 0, 6)
    last[6] = 0x70 | (pool[poolAt]! & 0x0f)
    last[7] = pool[poolAt + 1]!
    last[8] = 0x80 | (pool[poolAt + 2]! & 0x3f)
    pool.copy(last, 9, poolAt + 3, poolAt + 10)
    pool.fill(0, poolAt, poolAt + 10) // a byte handed out is not kept around
    poolAt += 10
  }
  lastMs = now
  for (let i = 0; i < 16; i++) {
    const byte = last[i]!
    const at = TEXT_AT[i]!
    text[at] = HEX_DIGITS[byte >> 4]!
    text[at + 1] = HEX_DIGITS[byte & 0x0f]!
  }
  return text.toString('latin1')
}

const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/

export function isUuidV7(s: string): boolean {
  return UUID7.test(s)
}

/** A new root traceparent (sampled), for events that arrive without one. */
export function newTraceparent(): string {
  const h = randomBytes(24).toString('hex')
  return `00-${h.slice(0, 32)}-${h.slice(32)}-01`
}

export function isTraceparent(s: string): boolean {
  const m = TRACEPARENT.exec(s)
  return m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!)
}

export function envelope(
  fields: Omit<EventEnvelope, 'id' | 'traceparent' | 'occurredAt'> &
    Partial<Pick<EventEnvelope, 'id' | 'traceparent' | 'occurredAt'>>,
): EventEnvelope {
  return {
    id: fields.id ?? uuidv7(),
    traceparent: fields.traceparent ?? newTraceparent(),
    occurredAt: fields.occurredAt ?? new Date(),
    type: fields.type,
    source: fields.source,
    schemaSubject: fields.schemaSubject,
    schemaVersion: fields.schemaVersion,
  }
}

export function toHeaders(e: EventEnvelope): IHeaders {
  return {
    [HEADER.specVersion]: '1.0',
    [HEADER.id]: e.id,
    [HEADER.type]: e.type,
    [HEADER.source]: e.source,
    [HEADER.time]: e.occurredAt.toISOString(),
    [HEADER.contentType]: AVRO_CONTENT_TYPE,
    [HEADER.schemaSubject]: e.schemaSubject,
    [HEADER.schemaVersion]: String(e.schemaVersion),
    [HEADER.traceparent]: e.traceparent,
  }
}

let isoMs = NaN
let isoText = ''

/**
 * The same headers as `toHeaders(envelope(...))`, built in one step for the producing hot path (no
 * intermediate envelope object; the ISO time of consecutive events in one millisecond is reused).
 */
export function envelopeHeaders(
  id: string,
  type: string,
  source: string,
  occurredAt: Date,
  schemaSubject: string,
  schemaVersion: number,
  traceparent: string,
): IHeaders {
  const ms = occurredAt.getTime()
  if (ms !== isoMs) {
    isoText = occurredAt.toISOString()
    isoMs = ms
  }
  return {
    [HEADER.specVersion]: '1.0',
    [HEADER.id]: id,
    [HEADER.type]: type,
    [HEADER.source]: source,
    [HEADER.time]: isoText,
    [HEADER.contentType]: AVRO_CONTENT_TYPE,
    [HEADER.schemaSubject]: schemaSubject,
    [HEADER.schemaVersion]: String(schemaVersion),
    [HEADER.traceparent]: traceparent,
  }
}

function header(h: IHeaders, name: string): string | undefined {
  const v = h[name]
  const one = Array.isArray(v) ? v[v.length - 1] : v
  return one === undefined ? undefined : Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
}

/** Reads and validates the envelope; a missing or malformed header is a DataError naming it. */
export function fromHeaders(h: IHeaders | undefined): EventEnvelope {
  const headers = h ?? {}
  const need = (name: string): string => {
    const v = header(headers, name)
    if (v === undefined || v === '') throw new DataError(`event header ${name} is missing`, { header: name })
    return v
  }
  const id = need(HEADER.id)
  if (!isUuidV7(id)) throw new DataError(`event header ${HEADER.id} is not a UUIDv7: ${id}`, { header: HEADER.id })
  const time = need(HEADER.time)
  const occurredAt = new Date(time)
  if (Number.isNaN(occurredAt.getTime()))
    throw new DataError(`event header ${HEADER.time} is not an RFC 3339 timestamp: ${time}`, { header: HEADER.time })
  const version = Number(need(HEADER.schemaVersion))
  if (!Number.isInteger(version) || version < 1)
    throw new DataError(`event header ${HEADER.schemaVersion} is not a positive integer`, {
      header: HEADER.schemaVersion,
    })
  const traceparent = need(HEADER.traceparent)
  if (!isTraceparent(traceparent))
    throw new DataError(`event header traceparent is not a W3C traceparent: ${traceparent}`, {
      header: HEADER.traceparent,
    })
  return {
    id,
    type: need(HEADER.type),
    source: need(HEADER.source),
    occurredAt,
    schemaSubject: need(HEADER.schemaSubject),
    schemaVersion: version,
    traceparent,
  }
}
