/**
 * The bounded buffer of a push-style source (HTTP, change streams): callers `offer` a group of
 * records and learn when the broker acked all of them (resolve) or when producing them failed
 * (reject); the source's `poll` drains whole groups, so one group is never split between a stored
 * and a failed produce. A full buffer refuses at once with a RetriableError: back-pressure in one
 * place, answered by the caller (HTTP 503 + Retry-After) instead of queueing without bound.
 */
import { RetriableError } from '../../common/errors.ts'
import type { SourceRecord } from './types.ts'

interface Group<V> {
  records: SourceRecord<V>[]
  remaining: number
  settled: boolean
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * The group a record was offered in, kept on the record itself (a WeakMap entry per event cost more than the rest of
 * its bookkeeping, in lookups and in garbage collection).
 */
const GROUP = Symbol('push-buffer group')
type Grouped<V> = SourceRecord<V> & { [GROUP]?: Group<V> }

export class PushBuffer<V = unknown> {
  private queue: Group<V>[] = []
  private queued = 0
  private wake: (() => void) | undefined
  private closedWith: Error | undefined

  constructor(readonly capacity: number) {}

  /** Records waiting to be drained. */
  get size(): number {
    return this.queued
  }

  offer(records: SourceRecord<V>[]): Promise<void> {
    if (this.closedWith) return Promise.reject(this.closedWith)
    if (records.length === 0) return Promise.resolve()
    if (this.queued > 0 && this.queued + records.length > this.capacity) {
      return Promise.reject(
        new RetriableError(
          `ingestion buffer is full (${this.queued} of ${this.capacity} records waiting for Kafka)`,
          1000,
          { stage: 'buffer' },
        ),
      )
    }
    return new Promise<void>((resolve, reject) => {
      const g: Group<V> = { records, remaining: records.length, settled: false, resolve, reject }
      for (const r of records) (r as Grouped<V>)[GROUP] = g
      this.queue.push(g)
      this.queued += records.length
      this.wake?.()
    })
  }

  /** Whole groups up to `max` records (a larger single group alone); waits up to `waitMs` for one. */
  async drain(max: number, waitMs: number, signal?: AbortSignal): Promise<SourceRecord<V>[]> {
    if (this.queue.length === 0 && waitMs > 0 && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, waitMs)
        const onAbort = () => done()
        signal?.addEventListener('abort', onAbort, { once: true })
        function done() {
          clearTimeout(t)
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        this.wake = done
      })
      this.wake = undefined
    }
    const out: SourceRecord<V>[] = []
    while (this.queue.length > 0) {
      const g = this.queue[0]!
      if (out.length > 0 && out.length + g.records.length > max) break
      this.queue.shift()
      this.queued -= g.records.length
      if (g.settled) continue
      for (const r of g.records) out.push(r)
    }
    return out
  }

  ack(records: SourceRecord<V>[]): void {
    for (const r of records) {
      const g = (r as Grouped<V>)[GROUP]
      if (!g || g.settled) continue
      if (--g.remaining === 0) {
        g.settled = true
        g.resolve()
      }
    }
  }

  fail(records: SourceRecord<V>[], err: Error): void {
    for (const r of records) {
      const g = (r as Grouped<V>)[GROUP]
      if (!g || g.settled) continue
      g.settled = true
      g.reject(err)
    }
  }

  /** Refuses new offers and rejects every queued group (stop). */
  close(err: Error): void {
    this.closedWith = err
    for (const g of this.queue) {
      if (!g.settled) {
        g.settled = true
        g.reject(err)
      }
    }
    this.queue = []
    this.queued = 0
    this.wake?.()
  }

  reopen(): void {
    this.closedWith = undefined
  }
}
