/**
 * Scans of Kafka ranges up to a captured high watermark (a consumer of its own, a group of its own,
 * no commits), and what a scan keeps: per key, the offset of its latest record. The snapshot
 * bootstrap (snapshot.ts) finds its winners with them, and a dead letter's retry whether a newer
 * record of its key was read since (worker/retry-requests.ts).
 */
import { randomUUID } from 'node:crypto'
import { type Consumer, createConsumer, type Kafka, type KafkaMessage } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { tpKey } from './store.ts'

// ------------------------------------------------------------------ key -> latest offset

const EMPTY = 0

/**
 * Key → latest offset (and whether that latest record is to be delivered), in typed arrays:
 * open addressing over a 96-bit digest of the key bytes (three mixed 32-bit hashes: two keys of a
 * million sharing one has a probability of about 1e-17 for well-spread digests; not a defence against
 * a publisher crafting colliding keys of its own data) and the offset, 20 bytes a slot, at most 75% full.
 */
export class LatestOffsetTable {
  #digests: Uint32Array
  /** offset * 2 + deliverable + 1; 0 = empty slot. */
  #values: Float64Array
  #mask: number
  #size = 0
  /** Records without a key cannot be told apart: each is its own state. */
  readonly #unkeyed: number[] = []

  constructor(initialCapacity = 1024) {
    let cap = 16
    while (cap < initialCapacity) cap *= 2
    this.#digests = new Uint32Array(cap * 3)
    this.#values = new Float64Array(cap)
    this.#mask = cap - 1
  }

  get size(): number {
    return this.#size + this.#unkeyed.length
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    return this.#digests.byteLength + this.#values.byteLength + this.#unkeyed.length * 8
  }

  /** Records `offset` as the key's latest when it is above what the table holds for the key. */
  set(key: Buffer | null, offset: number, deliverable: boolean): void {
    if (key === null) {
      if (deliverable) this.#unkeyed.push(offset)
      return
    }
    // three 32-bit hashes with distinct multipliers and seeds, each finished with murmur3's fmix32
    let a = 0x811c9dc5 ^ key.length
    let b = 0x9747b28c
    let c = 0x2b1e55ed ^ Math.imul(key.length, 0x9e3779b1)
    for (let i = 0; i < key.length; i++) {
      const x = key[i]!
      a = Math.imul(a ^ x, 0x01000193)
      b = Math.imul(b ^ x, 0x5bd1e995)
      b ^= b >>> 15
      c = Math.imul((c << 5) | (c >>> 27), 0x27d4eb2d) ^ x
    }
    a = fmix32(a)
    b = fmix32(b)
    c = fmix32(c)
    const v = offset * 2 + (deliverable ? 1 : 0) + 1
    let i = a & this.#mask
    for (;;) {
      const cur = this.#values[i]!
      if (cur === EMPTY) {
        this.#digests[i * 3] = a
        this.#digests[i * 3 + 1] = b
        this.#digests[i * 3 + 2] = c
        this.#values[i] = v
        if (++this.#size > (this.#mask + 1) * 0.75) this.#grow()
        return
      }
      if (this.#digests[i * 3] === a && this.#digests[i * 3 + 1] === b && this.#digests[i * 3 + 2] === c) {
        if (v > cur) this.#values[i] = v
        return
      }
      i = (i + 1) & this.#mask
    }
  }

  /** The offsets to deliver (latest of their key and deliverable), ascending. */
  winners(): Float64Array {
    let n = this.#unkeyed.length
    for (let i = 0; i < this.#values.length; i++) if (this.#values[i]! % 2 === 0 && this.#values[i]! !== EMPTY) n++
    const out = new Float64Array(n)
    let j = 0
    for (let i = 0; i < this.#values.length; i++) {
      const v = this.#values[i]!
      if (v !== EMPTY && v % 2 === 0) out[j++] = (v - 2) / 2 // deliverable: v = 2o + 2
    }
    for (const o of this.#unkeyed) out[j++] = o
    return out.sort()
  }

  /** The latest offsets in [from, to) (deliverable or not), ascending: a collapse's winners (latest-index.ts). */
  latestIn(from: number, to: number): Float64Array {
    const out: number[] = []
    for (let i = 0; i < this.#values.length; i++) {
      const v = this.#values[i]!
      if (v === EMPTY) continue
      const offset = Math.floor((v - 1) / 2)
      if (offset >= from && offset < to) out.push(offset)
    }
    for (const o of this.#unkeyed) if (o >= from && o < to) out.push(o)
    return Float64Array.from(out).sort()
  }

  #grow(): void {
    const oldD = this.#digests
    const oldV = this.#values
    const cap = oldV.length * 2
    this.#digests = new Uint32Array(cap * 3)
    this.#values = new Float64Array(cap)
    this.#mask = cap - 1
    for (let s = 0; s < oldV.length; s++) {
      const v = oldV[s]!
      if (v === EMPTY) continue
      let i = oldD[s * 3]! & this.#mask
      while (this.#values[i] !== EMPTY) i = (i + 1) & this.#mask
      this.#digests[i * 3] = oldD[s * 3]!
      this.#digests[i * 3 + 1] = oldD[s * 3 + 1]!
      this.#digests[i * 3 + 2] = oldD[s * 3 + 2]!
      this.#values[i] = v
    }
  }
}

function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** How many values of the ascending array are below `x`. */
export function countBelow(sorted: Float64Array, x: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid]! < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

// ------------------------------------------------------------------ the scan

export interface ScanRange {
  topic: string
  partition: number
  /** First offset to scan. */
  from: number
  /** The captured high watermark: offsets below it are the snapshot. */
  high: number
  /**
   * Records counted as scanned before `from` (deliverable), e.g. dead letters whose key may have a
   * newer record in [from, high): a seed is a winner only when none has.
   */
  seed?: ReadonlyArray<{ key: Buffer | null; offset: number }>
}

export interface ScanOptions {
  kafka: Kafka
  groupId: string
  ranges: ScanRange[]
  /** Whether a key's latest record is delivered (a value, an event type the subscription wants). */
  deliverable: (topic: string, message: KafkaMessage) => boolean
  /** A key whose latest record is a tombstone is a winner too (a collapse: the partner may hold the key). */
  tombstones?: boolean
  onScanned?: (n: number) => void
  logger: Logger
}

/** A running scan: `result` resolves with the winners per `<topic>|<partition>`; `abort` stops it. */
export interface Scan {
  result: Promise<Map<string, Float64Array>>
  abort(): Promise<void>
}

/** Reads [from, high) of every range with a consumer of its own (no commits) and returns the winners. */
export function scanLatest(o: ScanOptions): Scan {
  const winners = new Map<string, Float64Array>()
  const tables = new Map<string, LatestOffsetTable>()
  for (const r of o.ranges) {
    const table = new LatestOffsetTable()
    for (const s of r.seed ?? []) table.set(s.key, s.offset, true)
    tables.set(tpKey(r.topic, r.partition), table)
  }
  const read = readRanges({
    kafka: o.kafka,
    groupId: o.groupId,
    ranges: o.ranges,
    label: 'snapshot scan',
    onMessage: (r, m) =>
      tables
        .get(tpKey(r.topic, r.partition))!
        .set(m.key ?? null, Number(m.offset), (m.value !== null || o.tombstones === true) && o.deliverable(r.topic, m)),
    onRangeDone: (r) => {
      const k = tpKey(r.topic, r.partition)
      winners.set(k, tables.get(k)?.winners() ?? new Float64Array(0))
      tables.delete(k)
    },
    ...(o.onScanned ? { onScanned: o.onScanned } : {}),
  })
  return { result: read.done.then(() => winners), abort: read.abort }
}

export interface RangeReadOptions {
  kafka: Kafka
  groupId: string
  ranges: ScanRange[]
  /** Each record of a range below its high watermark, in offset order; a throw fails the read. */
  onMessage: (range: ScanRange, message: KafkaMessage) => void | Promise<void>
  /** A range was read to its end (empty ranges at once). */
  onRangeDone?: (range: ScanRange) => void
  onScanned?: (n: number) => void
  /** Names the read in its abort error ("<label> aborted"). */
  label?: string
}

/** A running read of ranges: `done` resolves once every range was read to its end; `abort` stops it. */
export interface RangeRead {
  done: Promise<void>
  abort(): Promise<void>
}

/**
 * Reads [from, high) of every range with a consumer of its own (a group of its own, no commits):
 * the snapshot scan, and tools that read a topic up to its current end (cli/migrate-keys.ts).
 */
export function readRanges(o: RangeReadOptions): RangeRead {
  const label = o.label ?? 'range read'
  const byKey = new Map(o.ranges.map((r) => [tpKey(r.topic, r.partition), r]))
  const next = new Map<string, number>()
  const pending = new Set<string>()
  for (const [k, r] of byKey) {
    if (r.from < r.high) {
      pending.add(k)
      next.set(k, r.from)
    } else o.onRangeDone?.(r)
  }
  let consumer: Consumer | null = null
  let settle: { resolve: () => void; reject: (e: unknown) => void } | null = null
  let aborted = false
  let failed = false
  const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }))
  finished.catch(() => undefined)

  const finish = (k: string) => {
    if (!pending.delete(k)) return
    const r = byKey.get(k)!
    o.onRangeDone?.(r)
    consumer?.pause([{ topic: r.topic, partitions: [r.partition] }])
    if (pending.size === 0) settle!.resolve()
  }

  const run = async (): Promise<void> => {
    if (pending.size === 0) return
    const c = createConsumer(o.kafka, {
      groupId: `${o.groupId}.${randomUUID().slice(0, 8)}`,
      maxWaitTimeInMs: 100,
      maxBytes: 4 << 20,
    })
    consumer = c
    try {
      await c.connect()
      if (aborted) throw new Error(`${label} aborted`)
      await c.subscribe({ topics: [...new Set(o.ranges.map((r) => r.topic))], fromBeginning: true })
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
          const k = tpKey(batch.topic, batch.partition)
          const r = byKey.get(k)
          if (!r || !pending.has(k)) return
          let n = 0
          let last: string | null = null
          const messages = batch.messages
          for (let i = 0; i < messages.length; i++) {
            const m = messages[i]!
            // (checked every 256 records: isStale() builds a key per call, a measurable cost per record)
            if (aborted || failed || ((i & 255) === 0 && (!isRunning() || isStale()))) break
            last = m.offset
            const offset = Number(m.offset)
            if (offset < next.get(k)!) continue // before the seek, or fetched again
            if (offset >= r.high) {
              finish(k)
              break
            }
            try {
              const pending = o.onMessage(r, m)
              if (pending) await pending
            } catch (err) {
              failed = true
              settle!.reject(err)
              break
            }
            next.set(k, offset + 1)
            n++
            if (offset >= r.high - 1) {
              finish(k)
              break
            }
            if (n % 2000 === 0) await heartbeat()
          }
          // The fetch position moves only past resolved offsets (eachBatchAutoResolve is off): without
          // this, a partition larger than one fetch (maxBytesPerPartition) was fetched from the same
          // offset forever and the scan never ended. Once per batch: kafkajs parses the offset into a
          // Long on every call, a measurable cost per record.
          if (last !== null) resolveOffset(last)
          if (n > 0) o.onScanned?.(n)
        },
      })
      for (const [k, r] of byKey) {
        if (pending.has(k)) c.seek({ topic: r.topic, partition: r.partition, offset: String(r.from) })
        else c.pause([{ topic: r.topic, partitions: [r.partition] }])
      }
      await finished
      if (aborted) throw new Error(`${label} aborted`)
    } finally {
      await c.disconnect().catch(() => undefined)
    }
  }

  return {
    done: run(),
    async abort() {
      aborted = true
      settle?.reject(new Error(`${label} aborted`))
      await consumer?.disconnect().catch(() => undefined)
    },
  }
}
