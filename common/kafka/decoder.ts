/**
 * kafkajs 2.2.4 decodes every fetched record's headers with
 * `reduce((obj, { key, value }) => ({ ...obj, [key]: ... }), {})`: a new object per header, each copying the ones
 * before it. An event of ours carries ten envelope headers, so every record cost ten objects and 55 property copies,
 * and each record's offset and timestamp were computed by parsing the batch's first offset and first timestamp
 * from their decimal text into `Long`s, adding, and printing them again. Profiled on a snapshot scan (a consumer
 * reading 200,000 of our records), that header `reduce` was the largest single item (24 % of the CPU, besides
 * most of the 23 % spent collecting its garbage).
 *
 * This module replaces the record decoder (kafkajs/src/protocol/recordBatch/record/v0/decoder.js) with one that
 * builds the same record: the headers object filled in place (a repeated header key still becomes an array of its
 * values, in order; a header named `__proto__` is still an own property; one named like a member of
 * `Object.prototype`, e.g. `constructor`, is its value, where the stock decoder made it an array beginning with the
 * inherited function), the offset and timestamp added as
 * numbers when the batch's first offset and timestamp and the deltas are exact in a double (always, in practice;
 * otherwise `Long` as before). test/unit/kafkajs-decoder.test.ts compares it with the stock decoder on generated
 * batches. Installed once, by common/kafka/client.ts, before kafkajs loads its record batch decoder (it is loaded on
 * the first fetch, and keeps the record decoder it required); the version is checked so that another kafkajs is left
 * as it is.
 */
import { createRequire } from 'node:module'
import { patchableKafkajsModule } from './internals.ts'

const require = createRequire(import.meta.url)

const RECORD_DECODER = 'kafkajs/src/protocol/recordBatch/record/v0/decoder.js'
const BATCH_DECODER = 'kafkajs/src/protocol/recordBatch/v0/decoder.js'

interface LongLike {
  toString(): string
  toNumber(): number
  add(other: LongLike | number): LongLike
}
interface LongClass {
  fromValue(v: string | number | LongLike): LongLike
}
interface DecoderLike {
  readInt8(): number
  readVarLong(): LongLike
  readVarInt(): number
  readVarIntBytes(): Buffer | null
  readVarIntArray<T>(reader: (d: DecoderLike) => T): T[]
}
interface BatchContext {
  firstOffset: string
  firstTimestamp: string
  magicByte?: number
  isControlBatch?: boolean
  timestampType?: number
  maxTimestamp?: string
}
type RecordDecoder = (decoder: DecoderLike, batchContext?: BatchContext) => Record<string, unknown>
type HeaderValue = Buffer | null
type Headers = Record<string, HeaderValue | HeaderValue[]>

/** The record decoder module as kafkajs' require cache holds it. */
interface CachedModule {
  exports: RecordDecoder
}

let original: RecordDecoder | undefined

/** A batch's first offset and timestamp as numbers, once per batch (the context is one object per batch). */
const firsts = new WeakMap<BatchContext, { offset: number; timestamp: number }>()

/** Adds a small delta to a decimal integer: as a number when exact, through `Long` otherwise. */
function plus(Long: LongClass, first: string, firstNumber: number, delta: number | LongLike): string {
  const d = typeof delta === 'number' ? delta : delta.toNumber()
  const sum = firstNumber + d
  if (Number.isSafeInteger(firstNumber) && Number.isSafeInteger(d) && Number.isSafeInteger(sum)) return String(sum)
  return Long.fromValue(first)
    .add(typeof delta === 'number' ? Long.fromValue(delta) : delta)
    .toString()
}

/** The patched decoder: the stock record decoder's output, built without the per-header copies. */
export function fastRecordDecoder(
  Long: LongClass,
  HeaderDecoder: (d: DecoderLike) => { key: string; value: HeaderValue },
  LOG_APPEND_TIME: number,
): RecordDecoder {
  return (decoder, batchContext = {} as BatchContext) => {
    const { firstOffset, firstTimestamp, magicByte, isControlBatch = false, timestampType, maxTimestamp } = batchContext
    let f = firsts.get(batchContext)
    if (!f) {
      f = { offset: Number(firstOffset), timestamp: Number(firstTimestamp) }
      firsts.set(batchContext, f)
    }
    const attributes = decoder.readInt8()
    const timestampDelta = decoder.readVarLong()
    const timestamp =
      timestampType === LOG_APPEND_TIME && maxTimestamp
        ? maxTimestamp
        : plus(Long, firstTimestamp, f.timestamp, timestampDelta)
    const offsetDelta = decoder.readVarInt()
    const offset = plus(Long, firstOffset, f.offset, offsetDelta)
    const key = decoder.readVarIntBytes()
    const value = decoder.readVarIntBytes()
    const headers: Headers = {}
    for (const h of decoder.readVarIntArray(HeaderDecoder)) {
      let cur = headers[h.key]
      if (cur !== undefined && !Object.prototype.hasOwnProperty.call(headers, h.key)) cur = undefined // inherited
      const next = cur === undefined ? h.value : Array.isArray(cur) ? cur.concat([h.value]) : [cur, h.value]
      if (h.key === '__proto__')
        Object.defineProperty(headers, h.key, { value: next, enumerable: true, writable: true, configurable: true })
      else headers[h.key] = next
    }
    return {
      magicByte,
      attributes,
      timestamp,
      offset,
      key,
      value,
      headers,
      isControlRecord: isControlBatch,
      batchContext,
    }
  }
}

/** The stock record decoder (for tests comparing both); undefined from another kafkajs. */
export function stockRecordDecoder(): RecordDecoder | undefined {
  if (!patchableKafkajsModule(RECORD_DECODER)) return undefined
  return original ?? (require(RECORD_DECODER) as RecordDecoder)
}

/**
 * Installs the patched record decoder (idempotent). False when the installed kafkajs is not the version this was
 * written for, or when its record batch decoder was loaded already (it holds the stock record decoder then).
 */
export function installKafkaDecoderPatch(): boolean {
  if (original) return true
  const stock = patchableKafkajsModule<RecordDecoder>(RECORD_DECODER)
  if (!stock) return false
  if (require.cache[require.resolve(BATCH_DECODER)]) return false
  const cached = require.cache[require.resolve(RECORD_DECODER)] as CachedModule | undefined
  if (!cached) return false
  original = stock
  cached.exports = fastRecordDecoder(
    require('kafkajs/src/utils/long.js') as LongClass,
    require('kafkajs/src/protocol/recordBatch/header/v0/decoder.js') as Parameters<typeof fastRecordDecoder>[1],
    (require('kafkajs/src/protocol/timestampTypes.js') as { LOG_APPEND_TIME: number }).LOG_APPEND_TIME,
  )
  return true
}

/** Whether the record decoder kafkajs uses is the patched one. */
export function kafkaDecoderPatched(): boolean {
  return original !== undefined && require(RECORD_DECODER) !== original
}
