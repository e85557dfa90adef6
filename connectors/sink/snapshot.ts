/**
 * Snapshot bootstrap of a subscription (issue #6): the current state of every key, then live changes,
 * with no gap and no key version delivered twice.
 *
 * When a snapshot starts (a new subscription with startFrom 'snapshot', or an offset reset
 * `to: 'snapshot'`), the worker captures the HIGH WATERMARK H of every partition the subscription
 * reads and starts the subscription at the partition's low watermark, detached from the shared stream.
 *
 *  1. SCAN (phase 'scanning'): a reader of its own reads [start, H) of every partition and keeps, per
 *     key, only the offset of its latest record (LatestOffsetTable: 96-bit key digests in typed arrays,
 *     about 20-40 bytes per key whatever the key's length, so 1,000,000 keys take some 20-40 MB; the
 *     table of a partition is dropped once its winners are known). The result per partition is the
 *     sorted list of WINNERS: offsets of records that are the latest of their key below H, are not
 *     tombstones, and carry an event type the subscription wants (8 bytes per key).
 *  2. DELIVER (phase 'delivering'): the ordinary catch-up reader reads from the start; below H only
 *     winners are enqueued (through the same delivery queue and `#deliver` as every record, so grant
 *     checks apply), every other offset is skipped (counted as done); from H on everything is
 *     delivered: that is the live stream, handed over to the shared reader as for any catch-up. Kafka
 *     offsets are contiguous positions, so nothing between the snapshot and the live stream is lost,
 *     and no key version is enqueued twice (the queue ignores offsets below what it holds).
 *  3. LIVE: once every partition's delivered position reached H, the snapshot is complete.
 *
 * Progress {phase, done, total} is in the connector status: while scanning, records scanned out of the
 * records below H; then keys delivered out of keys to deliver.
 *
 * RESTART mid-snapshot RESUMES it: the snapshot document (H per partition, total) is written before the
 * subscription's cursor, by the lease holder only. The next holder finds the document (same reset as
 * the cursor's, not complete), keeps the same H, starts from the cursor (everything below it is done)
 * and scans [cursor, H) again: whether a record in [cursor, H) is the latest of its key below H depends
 * only on the records after it and below H, which Kafka keeps (offsets never change; compaction only
 * removes a record superseded by a later one of the same key, whose state then arrives instead). So the
 * resumed run enqueues exactly the winners not delivered yet; duplicates are limited to deliveries in
 * flight at the crash, re-sent with the same event id (at-least-once).
 */
import type { Collection, Db } from 'mongodb'
import { findByIds } from '../../control-plane/store.ts'
import type { SnapshotProgress } from '../../control-plane/types.ts'
import { countBelow, type Scan } from './scan.ts'
import { tpKey } from './store.ts'

// ------------------------------------------------------------------ the durable record

export type SnapshotPhase = SnapshotProgress['phase']

/** One document per subscription: its current (or last) snapshot. Written by the lease holder only. */
export interface SnapshotDoc {
  /** The subscription id. */
  _id: string
  snapshotId: string
  /** The offset reset that asked for it; null: the subscription's startFrom 'snapshot', or a collapse. */
  resetId: string | null
  /**
   * 'collapse': a backlog collapsed to the latest record of each key from the subscription's position on
   * (deliveryPolicy.collapseBacklog, on resume): tombstones are delivered too, since the partner may hold
   * the key. Absent: a snapshot bootstrap.
   */
  kind?: 'collapse'
  /** `<topic>|<partition>` → the captured high watermark. */
  highs: Record<string, string>
  phase: SnapshotPhase
  /** Keys to deliver (known once scanned). */
  total: number | null
  done: number
  startedAt: Date
  completedAt: Date | null
  workerId: string
  updatedAt: Date
}

export const SNAPSHOT_COLLECTION = 'sink_snapshots'

/** As stored: topic names hold dots, which field names must not (FerretDB refuses them), so the highs are a list. */
type StoredSnapshotDoc = Omit<SnapshotDoc, 'highs'> & {
  highs: Array<{ topic: string; partition: number; high: string }>
}

function fromStored(doc: StoredSnapshotDoc): SnapshotDoc {
  return { ...doc, highs: Object.fromEntries((doc.highs ?? []).map((h) => [tpKey(h.topic, h.partition), h.high])) }
}

export class SnapshotStore {
  readonly col: Collection<StoredSnapshotDoc>
  constructor(db: Db) {
    this.col = db.collection(SNAPSHOT_COLLECTION)
  }
  async get(subscriptionId: string): Promise<SnapshotDoc | null> {
    const doc = await this.col.findOne({ _id: subscriptionId })
    return doc ? fromStored(doc) : null
  }
  /** The snapshot documents of many subscriptions (one query). */
  async getMany(subscriptionIds: string[]): Promise<Map<string, SnapshotDoc>> {
    const docs = await findByIds(this.col, subscriptionIds)
    return new Map(docs.map((d) => [d._id, fromStored(d)]))
  }
  async put(doc: SnapshotDoc): Promise<void> {
    const { _id, highs, ...rest } = doc
    const list = Object.entries(highs).map(([k, high]) => {
      const i = k.lastIndexOf('|')
      return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)), high }
    })
    await this.col.replaceOne({ _id }, { ...rest, highs: list }, { upsert: true })
  }
  async delete(subscriptionId: string): Promise<void> {
    await this.col.deleteOne({ _id: subscriptionId })
  }
}

/**
 * What a starting run does about snapshots:
 *  - 'new': capture new high watermarks and start from the low ones (startFrom 'snapshot' without a
 *    cursor, or an offset reset to 'snapshot' applied now);
 *  - 'resume': an unfinished snapshot of the same reset as the cursor: keep its high watermarks;
 *  - 'new' too for a collapse asked by this start (a resumed subscription with collapseBacklog): from the
 *    cursor, not the low watermarks;
 *  - 'none': positions as usual (a snapshot document of an earlier, finished snapshot only reports).
 */
export function snapshotDecision(a: {
  startFrom: string
  hasCursor: boolean
  cursorResetId: string | null
  /** The offset reset applied by this start, if any. */
  applyingReset: { id: string; to: string } | null
  existing: Pick<SnapshotDoc, 'phase' | 'resetId'> | null
  /** This start collapses the subscription's backlog (its cursor stays where it is). */
  collapse?: boolean
}): 'new' | 'resume' | 'none' {
  if (a.applyingReset) return a.applyingReset.to === 'snapshot' ? 'new' : 'none'
  if (a.collapse && a.hasCursor) return 'new'
  if (!a.hasCursor) return a.startFrom === 'snapshot' ? 'new' : 'none'
  if (a.existing && a.existing.phase !== 'live' && a.existing.resetId === a.cursorResetId) return 'resume'
  return 'none'
}

// ------------------------------------------------------------------ a run's snapshot

/** The snapshot state of one running subscription (in the worker's memory). */
export class SnapshotRun {
  readonly doc: SnapshotDoc
  readonly highs: Map<string, number>
  /** Winners per partition, once scanned (null while scanning). */
  winners: Map<string, Float64Array> | null = null
  scan: Scan | null = null
  /** After a failed scan: not before this time (ms). */
  retryAt = 0
  scanned = 0
  /** Records below H from the run's start positions (scan progress total). */
  readonly scanTotal: number
  /** Delivered-or-skipped positions at the start of this run, per partition. */
  readonly starts: Map<string, number>
  /** Winners delivered before this run (a resumed snapshot). */
  #doneBefore = 0

  constructor(doc: SnapshotDoc, starts: Map<string, number>) {
    this.doc = doc
    this.highs = new Map(Object.entries(doc.highs).map(([k, v]) => [k, Number(v)]))
    this.starts = starts
    let t = 0
    for (const [k, h] of this.highs) t += Math.max(0, h - (starts.get(k) ?? h))
    this.scanTotal = t
  }

  get phase(): SnapshotPhase {
    return this.doc.phase
  }

  /** The scan's result: winners from the run's start on. Sets the total (first scan) and the phase. */
  scannedAll(winners: Map<string, Float64Array>): void {
    this.winners = winners
    let remaining = 0
    for (const w of winners.values()) remaining += w.length
    if (this.doc.total === null) this.doc.total = remaining
    this.#doneBefore = Math.max(0, this.doc.total - remaining)
    this.doc.phase = 'delivering'
  }

  /** Whether the record at `offset` of partition `k` is to be enqueued (false: skip it). */
  wants(k: string, offset: number): boolean {
    const h = this.highs.get(k)
    if (h === undefined || offset >= h) return true
    const w = this.winners?.get(k)
    if (!w) return false // not scanned: never offered (the run stays detached while scanning)
    const i = countBelow(w, offset)
    return i < w.length && w[i] === offset
  }

  /**
   * The first offset at or after `from` that the run wants on the partition (a winner, or its high watermark: from
   * there on everything); `from` itself while the scan has not finished. The records before it are skipped unread.
   */
  nextWanted(k: string, from: number): number {
    const h = this.highs.get(k)
    const w = this.winners?.get(k)
    if (h === undefined || from >= h || !w) return from
    const i = countBelow(w, from)
    return i < w.length ? w[i]! : h
  }

  /** Done once every partition's delivered position reached its high watermark. */
  complete(positions: Record<string, string>): boolean {
    if (!this.winners) return false
    for (const [k, h] of this.highs) if (Number(positions[k] ?? 0) < h) return false
    return true
  }

  progress(positions: Record<string, string>): SnapshotProgress {
    const d = this.doc
    let done: number
    let total: number
    if (d.phase === 'scanning' || !this.winners) {
      done = this.scanned
      total = this.scanTotal
    } else if (d.phase === 'live') {
      done = total = d.total ?? 0
    } else {
      done = this.#doneBefore
      for (const [k, w] of this.winners) done += countBelow(w, Number(positions[k] ?? 0))
      total = d.total ?? 0
    }
    d.done = Math.min(done, total)
    return {
      id: d.snapshotId,
      phase: d.phase,
      done: Math.min(done, total),
      total,
      startedAt: d.startedAt,
      completedAt: d.completedAt,
    }
  }

  finished(): void {
    this.doc.phase = 'live'
    this.doc.done = this.doc.total ?? 0
    this.doc.completedAt = new Date()
    this.winners = new Map() // free the winners: everything below H is done
  }
}

/** A finished snapshot's progress, for the status of later runs. */
export function finishedProgress(doc: SnapshotDoc): SnapshotProgress {
  return {
    id: doc.snapshotId,
    phase: doc.phase,
    done: doc.done,
    total: doc.total ?? 0,
    startedAt: doc.startedAt,
    completedAt: doc.completedAt,
  }
}
