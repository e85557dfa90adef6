/**
 * When each offset of a partition reached Kafka, approximately: the shared reader notes (offset, record
 * timestamp) samples as records pass, so that the worker can tell how old the oldest record a
 * subscription has not been sent yet is, without reading that record (as kafka-lag-exporter estimates
 * lag in seconds from sampled offsets). A subscription that is paused or parked keeps its position while
 * the samples move on: its freshness then grows with the wall clock (status.ts).
 *
 * Samples are kept per partition at least `minGapMs` apart, at most `maxSamples`; when full, every
 * other one of the older half goes, so the table covers a long outage at a coarser grain and stays
 * small (a few KB per partition, however many subscriptions read it).
 */
interface Sample {
  offset: number
  at: number
}

export class OffsetTimes {
  readonly #byPartition = new Map<string, Sample[]>()

  constructor(private readonly options: { minGapMs?: number; maxSamples?: number } = {}) {}

  /** A record at `offset` of the partition `key` that Kafka took at `at` (ms). */
  note(key: string, offset: number, at: number): void {
    if (!Number.isFinite(at)) return
    let samples = this.#byPartition.get(key)
    if (!samples) this.#byPartition.set(key, (samples = []))
    const last = samples.at(-1)
    if (last && (offset <= last.offset || at - last.at < (this.options.minGapMs ?? 200))) return
    samples.push({ offset, at })
    const max = this.options.maxSamples ?? 256
    if (samples.length > max) {
      const half = samples.length >> 1
      const thinned = samples.slice(0, half).filter((_, i) => i % 2 === 0)
      this.#byPartition.set(key, [...thinned, ...samples.slice(half)])
    }
  }

  /**
   * About when the record at `offset` reached Kafka: interpolated between the samples around it;
   * before the first sample, the first sample's time (an age too small, never too large); after the
   * last, the last sample's time (the record came within `minGapMs` of it); undefined when nothing was
   * noted for the partition.
   */
  timeOf(key: string, offset: number): number | undefined {
    const samples = this.#byPartition.get(key)
    if (!samples || samples.length === 0) return undefined
    let lo = 0
    let hi = samples.length - 1
    if (offset >= samples[hi]!.offset) return samples[hi]!.at
    if (offset <= samples[0]!.offset) return samples[0]!.at
    // the first sample at or after the offset
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (samples[mid]!.offset >= offset) hi = mid
      else lo = mid + 1
    }
    const after = samples[lo]!
    const before = samples[lo - 1]!
    const span = after.offset - before.offset
    return before.at + ((after.at - before.at) * (offset - before.offset)) / span
  }

  forget(key: string): void {
    this.#byPartition.delete(key)
  }
}
