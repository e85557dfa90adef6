/**
 * Where the worker and each held subscription are: the shared reader's next offset per
 * topic-partition, the watermarks, and a subscription's positions (per partition, below its oldest
 * undelivered record: DeliveryQueue.safeOffset). A CURSOR per subscription (one MongoDB document: its
 * next offset per topic-partition), written by the lease holder every `cursorFlushMs` and on pause,
 * stop and hand-over, is the durable truth.
 */
import type { Admin } from '../../../common/kafka/index.ts'
import type { Logger } from '../../../common/logger.ts'
import type { OffsetReset, SubscriptionDoc } from '../../../control-plane/types.ts'
import type { DeliveryQueue } from '../delivery-queue.ts'
import { tpKey, type CursorDoc, type SinkStore } from '../store.ts'
import { LatestIndex } from './latest-index.ts'
import { OffsetTimes } from './offset-times.ts'
import type { HeldRuns, Part, Run } from './run.ts'

/**
 * Cursor writes per flush pass at most. On FerretDB (SQLite) a cursor upsert costs the server about
 * 1.2 ms of CPU (it was 2 to 40 ms before the _id index fix, stack/ferretdb.ts), so a worker holding
 * 1,000 busy subscriptions that wrote every cursor every second kept the store, which leases and
 * statuses also need, and the machine busy: at 250 a flush the partners benchmark's p99 was 244 ms, at
 * 100 it is 47 ms. Beyond this many, the flushes take the runs in turns (round-robin, so those written
 * longest ago first, without sorting 10,000 runs every second): a cursor then lags by a few intervals
 * (1,000 busy subscriptions: 10 s; 10,000: 100 s; more re-deliveries, with the same webhook-id, after a
 * crash; Kafka Connect commits every 60 s), never runs ahead.
 */
export const MAX_CURSOR_WRITES_PER_FLUSH = 100

export interface PositionsOptions {
  queue: DeliveryQueue
  store: SinkStore
  held: HeldRuns
  workerId: string
  log: Logger
  /** The worker's Kafka admin (connected at start). */
  admin(): Admin
  /** Whether the leases are surely this worker's (ownership.ts): cursors are written only then. */
  leaseValid(): boolean
  /** Keys the collapse index may hold (worker.collapseIndexMaxKeys; 0: none). */
  collapseIndexMaxKeys: number
}

export class Positions {
  /** The shared reader's next offset per topic-partition. */
  readonly sharedNext = new Map<string, number>()
  /** High watermarks (for lag) and low watermarks (for resets), per topic-partition. */
  readonly high = new Map<string, number>()
  readonly low = new Map<string, number>()
  readonly partitions = new Map<string, number[]>()
  /** When offsets reached Kafka (for freshness): noted by the shared reader, seeded by the first refresh. */
  readonly times = new OffsetTimes()
  /** The latest offset of each key of the state topics, noted by the shared reader (a collapse's winners). */
  readonly latest: LatestIndex
  readonly #o: PositionsOptions
  /** Where the next limited flush starts among the runs (writeCursors: they take turns). */
  #turn = 0

  constructor(o: PositionsOptions) {
    this.#o = o
    this.latest = new LatestIndex(o.collapseIndexMaxKeys, o.log)
  }

  /**
   * A run's positions: per topic-partition, the offset below which everything was delivered, dead-lettered or skipped.
   */
  of(run: Run): Record<string, string> {
    const queue = this.#o.queue
    if (run.finalPositions) return run.finalPositions
    const out: Record<string, string> = {}
    if (!queue.has(run.id)) {
      for (const p of run.parts.values()) out[p.key] = String(p.next)
      return out
    }
    for (const p of run.parts.values())
      out[p.key] = queue.safeOffset(run.id, p.topic, p.partition, this.seen(p)) ?? String(p.next)
    return out
  }

  /** Everything below this offset was offered to the part's subscription or left out by the dispatch index. */
  seen(part: Part): number {
    return part.attached ? (this.sharedNext.get(part.key) ?? part.next) : part.next
  }

  /** Where a run starts from its cursor, or, without one, where the subscription starts (startFrom). */
  fromCursor(sub: SubscriptionDoc, topics: string[], cursor: CursorDoc | null): Map<string, number> {
    const positions = new Map<string, number>()
    for (const t of topics) {
      for (const p of this.partitions.get(t) ?? []) {
        const k = tpKey(t, p)
        const stored = cursor?.positions[k]
        let pos: number
        if (stored !== undefined) pos = Number(stored)
        else if (cursor || sub.startFrom !== 'latest')
          pos = this.low.get(k) ?? 0 // a partition added later, or earliest/snapshot
        else pos = this.sharedNext.get(k) ?? this.high.get(k) ?? 0
        const low = this.low.get(k) ?? 0
        if (pos < low) {
          this.#o.log.warn(
            'cursor is below the earliest retained offset: records in between were deleted by retention',
            { subscriptionId: sub._id, topic: t, partition: p, cursor: pos, earliest: low },
          )
          pos = low
        }
        positions.set(k, pos)
      }
    }
    return positions
  }

  /** Where an offset reset puts a run. */
  async reset(topics: string[], reset: OffsetReset): Promise<Map<string, number>> {
    const admin = this.#o.admin()
    const out = new Map<string, number>()
    for (const t of topics) {
      const offsets = await admin.fetchTopicOffsets(t)
      const byTime =
        reset.to === 'timestamp' && reset.timestamp
          ? await admin.fetchTopicOffsetsByTimestamp(t, new Date(reset.timestamp).getTime())
          : []
      for (const o of offsets) {
        const k = tpKey(t, o.partition)
        let pos = reset.to === 'earliest' || reset.to === 'snapshot' ? Number(o.low) : Number(o.high)
        if (reset.to === 'timestamp') {
          const found = byTime.find((b) => b.partition === o.partition)
          const v = found ? Number(found.offset) : -1
          pos = v >= 0 ? v : Number(o.high)
        }
        out.set(k, Math.max(pos, Number(o.low)))
      }
    }
    return out
  }

  /** A topic's partitions and watermarks, read again. */
  async refresh(topic: string): Promise<void> {
    const offsets = await this.#o.admin().fetchTopicOffsets(topic)
    this.partitions.set(
      topic,
      offsets.map((o) => o.partition).sort((a, b) => a - b),
    )
    for (const o of offsets) {
      const k = tpKey(topic, o.partition)
      this.low.set(k, Number(o.low))
      if (Number(o.high) > (this.high.get(k) ?? 0)) this.high.set(k, Number(o.high))
      // what is there already came before now: an age too small for records older than the worker, until
      // they are read (the delivery queue then knows their own time)
      if (Number(o.high) > 0 && this.times.timeOf(k, 0) === undefined)
        this.times.note(k, Number(o.high) - 1, Date.now())
    }
  }

  /** Leaves the shared stream: from here on the catch-up reader feeds every partition. */
  detachAll(run: Run): void {
    this.#o.held.behind.add(run)
    for (const part of run.parts.values()) {
      if (!part.attached) continue
      part.attached = false
      part.next = this.sharedNext.get(part.key) ?? part.next
    }
    this.#o.held.changed()
  }

  /**
   * Writes the cursors that changed (all with `force`); at most `limit`, the runs taking turns.
   * `fresh`: runs without a stored cursor (their first write: an insert).
   */
  async writeCursors(runs: Run[], force = false, limit = Infinity, fresh = false): Promise<void> {
    if (!this.#o.leaseValid()) return
    const changed: Array<{ run: Run; json: string; positions: Record<string, string> }> = []
    // beyond the limit, in turns from where the last flush stopped: only those are looked at
    const turns = runs.length > limit
    const from = turns ? this.#turn % runs.length : 0
    for (let i = 0; i < runs.length && changed.length < limit; i++) {
      const run = runs[(from + i) % runs.length]!
      if (turns) this.#turn = from + i + 1
      if (run.failure) continue
      const positions = this.of(run)
      const json = JSON.stringify([positions, run.appliedResetId])
      if (!force && json === run.lastCursor) continue
      changed.push({ run, json, positions })
    }
    const now = new Date()
    await this.#o.store.writeCursors(
      changed.map(({ run, positions }) => ({
        _id: run.id,
        positions,
        appliedResetId: run.appliedResetId,
        workerId: this.#o.workerId,
        updatedAt: now,
      })),
      fresh,
    )
    for (const { run, json } of changed) run.lastCursor = json
  }
}
