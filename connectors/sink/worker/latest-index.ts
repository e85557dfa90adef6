/**
 * The latest offset of every key of the state topics the shared reader reads, kept as it reads them, so that a
 * backlog collapse (docs/sink-workers.md, "Backlog collapse") finds its winners without a scan.
 *
 * A collapse from a subscription's cursor P needs, per partition, the latest record of every key in [P, H). The
 * shared reader reads every record of its topics from where it started S (the lowest cursor of the subscriptions held
 * then); a key's latest offset it has seen, if at least P and below H, is that key's latest record in [P, H), and a
 * key whose latest offset is below P has no record in [P, H), as long as the shared reader has read up to H (a key
 * whose latest offset seen is H or above goes after the collapse, with everything from H on). So when S <= P and the
 * shared reader reached the high watermark H captured at the resume (worker/snapshots.ts waits while it moves
 * towards it), the collapse's winners are known at once, where a scan of a day's backlog read every record of it again
 * (a million records: some 12 to 30 s on the 2-core machine). Otherwise (a worker started after the pause, a shared
 * reader behind, or too many keys) the collapse scans, as before.
 *
 * Memory: some 20 to 40 bytes a key (LatestOffsetTable); `collapseIndexMaxKeys` bounds the keys of all partitions
 * (beyond it the index is dropped for the worker's lifetime: a catalog of ten million keys collapses by scanning).
 */
import type { Logger } from '../../../common/logger.ts'
import { LatestOffsetTable } from '../scan.ts'

export class LatestIndex {
  readonly #parts = new Map<string, { from: number; table: LatestOffsetTable }>()
  readonly #maxKeys: number
  readonly #log: Logger
  #keys = 0
  #dropped = false

  constructor(maxKeys: number, log: Logger) {
    this.#maxKeys = maxKeys
    this.#log = log
  }

  /** Keys held, over all partitions. */
  get keys(): number {
    return this.#keys
  }

  /** Starts (again) keeping the partition's latest offsets from `from` on: where the shared reader starts reading. */
  track(k: string, from: number): void {
    if (this.#dropped || this.#maxKeys === 0) return
    const old = this.#parts.get(k)
    if (old) this.#keys -= old.table.size
    this.#parts.set(k, { from, table: new LatestOffsetTable() })
  }

  /**
   * The shared reader's next record of partition `k` is at `offset`, past the one it expected, on a topic without
   * compaction: records were skipped (kafkajs moved a position the broker no longer had, deleted by retention, to the
   * end of the log). The index covers the partition only from `offset` on: a collapse from a cursor before it scans
   * instead of missing a key whose latest record was in the stretch. What it holds from before stays: a key whose
   * latest offset seen is below `offset` has no record in a range from `offset` on either way. No allocation: on a
   * topic that does skip, it may happen often.
   */
  skipped(k: string, offset: number): void {
    const p = this.#parts.get(k)
    if (p && offset > p.from) p.from = offset
  }

  /** The shared reader read the record at `offset` of partition `k`. */
  note(k: string, key: Buffer | null, offset: number): void {
    const p = this.#parts.get(k)
    if (!p) return
    const before = p.table.size
    p.table.set(key, offset, true)
    if (p.table.size > before && ++this.#keys > this.#maxKeys) {
      this.#log.info('collapse index dropped: more keys than worker.collapseIndexMaxKeys; collapses scan instead', {
        maxKeys: this.#maxKeys,
      })
      this.#parts.clear()
      this.#keys = 0
      this.#dropped = true
    }
  }

  /**
   * The latest offset of each key in [from, to) of partition `k`, ascending, when the index covers it (it was kept
   * from `from` or earlier); undefined otherwise.
   */
  winners(k: string, from: number, to: number): Float64Array | undefined {
    const p = this.#parts.get(k)
    if (!p || from < p.from || to < from) return undefined
    return p.table.latestIn(from, to)
  }
}
