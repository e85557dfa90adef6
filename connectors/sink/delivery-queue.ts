/**
 * The per-subscription fan-out stage (after Convoy's ingest -> fan-out -> delivery -> retry): records
 * in, callbacks out, no Kafka, so the runtime can feed it from a shared reader or a catch-up reader.
 *
 * Per subscription:
 *  - records are queued in lanes, one lane per (topic, key) (per (topic, partition) for null keys):
 *    a lane delivers sequentially, lanes run in parallel up to `concurrency` at a time;
 *  - a failed head waits for its retry on a timer WITHOUT holding a concurrency slot, so other keys
 *    keep flowing, and nothing behind it in its lane overtakes it (per-key order across retries);
 *  - after `parkAfterFailures` consecutive retriable failures the subscription is parked: no fresh
 *    records are tried, one probe at a time follows the failed records' schedules, and the first
 *    success un-parks it. A parked subscription costs its buffered records and a few timers only;
 *  - failing continuously for `disableAfterMs`, or an EndpointDisabledError (410, refused URL),
 *    disables it: records are held (not retried, not dead-lettered) until `enable`;
 *  - exhausted or rejected records go to `onDeadLetter` (awaited: the offset only counts as done
 *    once the dead letter is stored);
 *  - `safeOffset` is, per topic-partition, the offset below which every record was delivered,
 *    dead-lettered or skipped: what a Kafka consumer may commit for this subscription;
 *  - `inject` queues a record outside the positions (a dead letter delivered again on request) in its
 *    key's lane, so that it never overtakes, nor runs beside, another record of its key;
 *  - with tracing on, every attempt is a `deliver <topic>` span, a child of the trace context the
 *    event carries in its headers, active while the deliver function runs (docs/tracing.md).
 *
 * The cost of an idle subscription is a few small objects; lanes exist only while they hold records.
 * What the queue takes, reports and keeps per subscription (lanes, entries, tracks): queue-model.ts.
 */
import { EndpointDisabledError, isRetriable, type EndpointDisabledReason } from '../../common/errors.ts'
import { createLogger, type Logger } from '../../common/logger.ts'
import { endSpan, eventContext, runInSpan, tracingOn } from '../../common/tracing.ts'
import { backoffDelay, DEFAULT_DELIVERY_POLICY, retryDelay } from '../retry.ts'
import { sleep } from '../../common/timers.ts'
import { Fifo } from './fifo.ts'
import {
  deliverySpan,
  laneKey,
  quietController,
  type DeadLetterInfo,
  type DeliveryQueueEvents,
  type DeliveryQueueOptions,
  type Entry,
  type InjectOptions,
  type Lane,
  type PartitionTrack,
  type PosEntry,
  type Position,
  type Sub,
  type SubscriptionOptions,
  type SubscriptionStats,
} from './queue-model.ts'
import type { SinkRecord } from './types.ts'

export { laneKey } from './queue-model.ts'
export type {
  DeadLetterInfo,
  DeliveredInfo,
  DeliverFn,
  DeliveryQueueEvents,
  DeliveryQueueOptions,
  FailedAttemptInfo,
  InjectOptions,
  Position,
  SubscriptionOptions,
  SubscriptionStats,
  SubscriptionStatus,
} from './queue-model.ts'

const DEFAULTS = { concurrency: 8, parkAfterFailures: 5, disableAfterMs: 5 * 24 * 3600_000 }

export class DeliveryQueue {
  readonly #subs = new Map<string, Sub>()
  /** Subscriptions holding records (buffered or in flight): only they hold positions back. */
  readonly #holding = new Set<string>()
  readonly #events: DeliveryQueueEvents
  readonly #logger: Logger
  readonly #random: () => number
  readonly #now: () => number

  constructor(events: DeliveryQueueEvents, options: DeliveryQueueOptions = {}) {
    this.#events = events
    this.#logger = options.logger ?? createLogger({ level: 'warn' })
    this.#random = options.random ?? Math.random
    this.#now = options.now ?? Date.now
  }

  addSubscription(options: SubscriptionOptions): void {
    if (this.#subs.has(options.id)) throw new Error(`subscription ${options.id} is already in the delivery queue`)
    this.#subs.set(options.id, {
      id: options.id,
      deliver: options.deliver,
      policy: options.policy ?? DEFAULT_DELIVERY_POLICY,
      concurrency: Math.max(1, options.concurrency ?? DEFAULTS.concurrency),
      parkAfterFailures: Math.max(1, options.parkAfterFailures ?? DEFAULTS.parkAfterFailures),
      disableAfterMs: options.disableAfterMs ?? DEFAULTS.disableAfterMs,
      lanes: new Map(),
      ready: new Fifo(),
      due: new Fifo(),
      inFlight: 0,
      waiting: 0,
      buffered: 0,
      status: 'active',
      paused: false,
      removed: false,
      consecutiveFailures: 0,
      failingSince: undefined,
      partitions: new Map(),
      controller: quietController(),
      watched: new Map(),
      rate:
        options.rateLimitPerSecond && options.rateLimitPerSecond > 0
          ? {
              perSecond: options.rateLimitPerSecond,
              tokens: Math.max(1, options.rateLimitPerSecond),
              at: this.#now(),
              timer: undefined,
            }
          : undefined,
    })
  }

  /** Drops the subscription and its buffered records, aborting in-flight deliveries. */
  removeSubscription(id: string): void {
    const sub = this.#subs.get(id)
    if (!sub) return
    sub.removed = true
    this.#holding.delete(id)
    sub.controller.abort(new Error(`subscription ${id} removed from the delivery queue`))
    if (sub.rate?.timer) clearTimeout(sub.rate.timer)
    for (const lane of sub.lanes.values()) {
      if (lane.timer) clearTimeout(lane.timer)
      for (const entry of lane.entries) entry.injected?.reject(sub.controller.signal.reason)
    }
    this.#subs.delete(id)
  }

  has(id: string): boolean {
    return this.#subs.has(id)
  }

  get size(): number {
    return this.#subs.size
  }

  /**
   * The subscriptions holding records now (buffered or in flight): the others' `safeOffset` is what they
   * were offered (`seen`), so a reader committing the minimum of many looks at these only.
   */
  holding(): ReadonlySet<string> {
    return this.#holding
  }

  /**
   * Queues a record for a subscription. Offsets must increase per topic-partition; a record below
   * what was already enqueued or skipped is ignored (false): it was or is being delivered.
   */
  enqueue(id: string, record: SinkRecord): boolean {
    const sub = this.#sub(id)
    const offset = Number(record.offset)
    const track = this.#track(sub, record.topic, record.partition, offset)
    if (offset < track.floor) return false
    const pos: PosEntry = { offset, done: false, at: record.appendedAt ?? record.timestamp }
    track.pending.push(pos)
    track.floor = offset + 1
    const key = laneKey(record)
    if (sub.watched.size > 0) {
      const w = sub.watched.get(key)
      if (w) w.enqueued++
    }
    this.#append(sub, key, { record, pos, track, attempts: 0, firstAttemptAt: 0, injected: null })
    return true
  }

  /**
   * Queues a record that is no position of the subscription (a dead letter delivered again on request)
   * at the end of its key's lane: after the records of its key the lane holds, before those enqueued
   * later, never at the same time as one of them. Resolves once it is delivered; rejects with the error
   * that ended it (rejected, its retries exhausted, the subscription removed): nothing of it goes to
   * onDeadLetter. Null (nothing queued) with `ifLatest` when its lane holds records.
   */
  inject(id: string, record: SinkRecord, options: InjectOptions = {}): Promise<void> | null {
    const sub = this.#sub(id)
    const key = laneKey(record)
    if (options.ifLatest && sub.lanes.has(key)) return null
    return new Promise<void>((resolve, reject) => {
      this.#append(sub, key, {
        record,
        pos: null,
        track: null,
        attempts: 0,
        firstAttemptAt: 0,
        injected: { deliver: options.deliver, policy: options.policy, resolve, reject },
      })
    })
  }

  /**
   * Watches the lane of `record`: `enqueuedSince()` is true once a record of its key was enqueued
   * after the watch began. `close()` ends the watch.
   */
  watch(id: string, record: SinkRecord): { enqueuedSince(): boolean; close(): void } {
    const sub = this.#sub(id)
    const key = laneKey(record)
    let w = sub.watched.get(key)
    if (!w) sub.watched.set(key, (w = { refs: 0, enqueued: 0 }))
    const watch = w
    watch.refs++
    const at = watch.enqueued
    let open = true
    return {
      enqueuedSince: () => watch.enqueued !== at,
      close: () => {
        if (!open) return
        open = false
        if (--watch.refs === 0 && sub.watched.get(key) === watch) sub.watched.delete(key)
      },
    }
  }

  #append(sub: Sub, key: string, entry: Entry): void {
    if (sub.buffered++ === 0) this.#holding.add(sub.id)
    let lane = sub.lanes.get(key)
    if (lane) {
      lane.entries.push(entry)
      return
    }
    lane = { key, entries: new Fifo(), state: 'ready', timer: undefined }
    lane.entries.push(entry)
    sub.lanes.set(key, lane)
    sub.ready.push(lane)
    this.#pump(sub)
  }

  /** A record the subscription does not want (filtered out): its offset counts as done. */
  skip(id: string, topic: string, partition: number, offset: string | number): void {
    const sub = this.#sub(id)
    const o = Number(offset)
    const track = this.#track(sub, topic, partition, o)
    if (o >= track.floor) track.floor = o + 1
  }

  /**
   * The offset a consumer may commit for this subscription and partition (undefined: nothing seen
   * yet). `seen`: the reader offered the subscription everything below it that it wants (records it
   * left out, see dispatch.ts, were never skipped one by one): with nothing pending, that is the position.
   */
  safeOffset(id: string, topic: string, partition: number, seen?: number): string | undefined {
    const track = this.#sub(id).partitions.get(`${topic}\u0000${partition}`)
    if (!track) return seen === undefined ? undefined : String(seen)
    const safe = this.#safe(track)
    return String(seen !== undefined && track.pending.length === 0 ? Math.max(safe, seen) : safe)
  }

  /** The subscription's oldest record on the partition not yet delivered nor dead-lettered (undefined: none held). */
  oldestPending(id: string, topic: string, partition: number): PosEntry | undefined {
    return this.#sub(id).partitions.get(`${topic}\u0000${partition}`)?.pending.peek()
  }

  positions(id: string): Position[] {
    return [...this.#sub(id).partitions.values()].map((t) => ({
      topic: t.topic,
      partition: t.partition,
      offset: String(this.#safe(t)),
    }))
  }

  stats(id: string): SubscriptionStats {
    const s = this.#sub(id)
    return {
      status: s.status,
      paused: s.paused,
      buffered: s.buffered,
      inFlight: s.inFlight,
      lanes: s.lanes.size,
      waiting: s.waiting,
      consecutiveFailures: s.consecutiveFailures,
    }
  }

  /** Records held for the subscription (buffered or in flight): the runtime's back-pressure signal. */
  buffered(id: string): number {
    return this.#sub(id).buffered
  }

  /** Stops starting deliveries (in-flight ones finish); records keep being accepted. */
  pause(id: string): void {
    this.#sub(id).paused = true
  }

  resume(id: string): void {
    const sub = this.#sub(id)
    sub.paused = false
    this.#pump(sub)
  }

  /** Re-enables a disabled (or parked) subscription: held records are tried again at once. */
  enable(id: string): void {
    const sub = this.#sub(id)
    sub.status = 'active'
    sub.consecutiveFailures = 0
    sub.failingSince = undefined
    this.#pump(sub)
  }

  close(): void {
    for (const id of [...this.#subs.keys()]) this.removeSubscription(id)
  }

  #sub(id: string): Sub {
    const sub = this.#subs.get(id)
    if (!sub) throw new Error(`subscription ${id} is not in the delivery queue`)
    return sub
  }

  #track(sub: Sub, topic: string, partition: number, firstOffset: number): PartitionTrack {
    const k = `${topic}\u0000${partition}`
    let track = sub.partitions.get(k)
    if (!track) {
      track = { topic, partition, pending: new Fifo(), floor: firstOffset }
      sub.partitions.set(k, track)
    }
    return track
  }

  #safe(track: PartitionTrack): number {
    return track.pending.peek()?.offset ?? track.floor
  }

  #pump(sub: Sub): void {
    if (sub.removed || sub.paused || sub.status === 'disabled') return
    if (sub.status === 'active') {
      while (sub.inFlight < sub.concurrency) {
        if (sub.due.length === 0 && sub.ready.length === 0) return
        if (sub.rate && !this.#token(sub, sub.rate)) return
        this.#start(sub, (sub.due.shift() ?? sub.ready.shift())!)
      }
      return
    }
    // parked: one probe at a time; fresh records only when no failed one is waiting for its turn.
    if (sub.inFlight > 0) return
    if (sub.due.length === 0 && (sub.waiting > 0 || sub.ready.length === 0)) return
    if (sub.rate && !this.#token(sub, sub.rate)) return
    this.#start(sub, (sub.due.shift() ?? sub.ready.shift())!)
  }

  /** Takes a token of the subscription's rate limit; without one, pumps again when the next is due. */
  #token(sub: Sub, rate: NonNullable<Sub['rate']>): boolean {
    const now = this.#now()
    rate.tokens = Math.min(Math.max(1, rate.perSecond), rate.tokens + ((now - rate.at) / 1000) * rate.perSecond)
    rate.at = now
    if (rate.tokens >= 1) {
      rate.tokens -= 1
      return true
    }
    if (rate.timer === undefined) {
      const waitMs = Math.max(1, Math.ceil(((1 - rate.tokens) / rate.perSecond) * 1000))
      rate.timer = setTimeout(() => {
        rate.timer = undefined
        this.#guarded(sub, () => this.#pump(sub))
      }, waitMs)
      rate.timer.unref?.()
    }
    return false
  }

  #start(sub: Sub, lane: Lane): void {
    const entry = lane.entries.peek()!
    lane.state = 'inflight'
    sub.inFlight++
    entry.attempts++
    if (entry.attempts === 1) entry.firstAttemptAt = this.#now()
    const startedAt = this.#now()
    const attempt = entry.attempts
    const deliver = entry.injected?.deliver ?? sub.deliver
    const span = tracingOn() ? deliverySpan(sub.id, entry, attempt) : undefined
    const run = () => {
      let pending: Promise<void>
      try {
        pending = deliver(entry.record, { attempt, signal: sub.controller.signal })
      } catch (err) {
        pending = Promise.reject(err)
      }
      pending.then(
        () => {
          if (span) endSpan(span)
          this.#guarded(sub, () => this.#succeeded(sub, lane, entry))
        },
        (err: unknown) => {
          if (span) endSpan(span, err)
          this.#guarded(sub, () => this.#failed(sub, lane, entry, err, startedAt))
        },
      )
    }
    // with tracing on, the attempt's outcome is handled in its span's context too: a dead letter or
    // a parking logged because of it carries its trace_id
    if (span) runInSpan(span, run, eventContext(entry.record.headers))
    else run()
  }

  #succeeded(sub: Sub, lane: Lane, entry: Entry): void {
    if (sub.removed) return
    sub.inFlight--
    sub.consecutiveFailures = 0
    sub.failingSince = undefined
    if (sub.status === 'parked') {
      sub.status = 'active'
      this.#logger.info('subscription un-parked: the endpoint answers again', { subscriptionId: sub.id })
      this.#emit(() => this.#events.onUnparked?.(sub.id))
    }
    if (this.#events.onDelivered) {
      try {
        this.#events.onDelivered(sub.id, entry.record, {
          attempts: entry.attempts,
          firstAttemptAt: entry.firstAttemptAt,
          latencyMs: this.#now() - entry.firstAttemptAt,
        })
      } catch (err) {
        this.#logger.error('delivery queue event handler threw', { error: err })
      }
    }
    this.#completeHead(sub, lane)
    entry.injected?.resolve()
    this.#pump(sub)
  }

  #failed(sub: Sub, lane: Lane, entry: Entry, err: unknown, startedAt: number): void {
    if (sub.removed) return
    sub.inFlight--
    const ctx = {
      subscriptionId: sub.id,
      topic: entry.record.topic,
      partition: entry.record.partition,
      offset: entry.record.offset,
      eventId: entry.record.eventId,
      attempt: entry.attempts,
    }
    if (err instanceof EndpointDisabledError) {
      this.#emit(() => this.#events.onAttemptFailed?.(sub.id, entry.record, { attempt: entry.attempts, error: err }))
      this.#hold(sub, lane)
      this.#disable(sub, err.reason, err)
      return
    }
    if (!isRetriable(err)) {
      // The endpoint answered (4xx) or the record itself is bad: dead letter now; the endpoint is alive.
      this.#emit(() => this.#events.onAttemptFailed?.(sub.id, entry.record, { attempt: entry.attempts, error: err }))
      sub.consecutiveFailures = 0
      sub.failingSince = undefined
      if (entry.injected) this.#giveUp(sub, lane, entry, err)
      else void this.#deadLetter(sub, lane, entry, err, 'rejected')
      this.#pump(sub)
      return
    }
    sub.consecutiveFailures++
    sub.failingSince ??= startedAt
    if (this.#now() - sub.failingSince >= sub.disableAfterMs) {
      this.#emit(() => this.#events.onAttemptFailed?.(sub.id, entry.record, { attempt: entry.attempts, error: err }))
      this.#hold(sub, lane)
      this.#disable(sub, 'failing', err)
      return
    }
    const delay = retryDelay(entry.injected?.policy ?? sub.policy, entry.attempts, err, this.#random)
    this.#emit(() =>
      this.#events.onAttemptFailed?.(sub.id, entry.record, {
        attempt: entry.attempts,
        error: err,
        ...(delay !== undefined ? { retryInMs: delay } : {}),
      }),
    )
    if (delay === undefined && entry.injected) this.#giveUp(sub, lane, entry, err)
    else if (delay === undefined) {
      this.#logger.warn('delivery exhausted its retries: dead letter', { ...ctx, error: err })
      void this.#deadLetter(sub, lane, entry, err, 'exhausted')
    } else {
      lane.state = 'waiting'
      sub.waiting++
      lane.timer = setTimeout(() => {
        lane.timer = undefined
        if (sub.removed) return
        sub.waiting--
        lane.state = 'due'
        sub.due.push(lane)
        this.#pump(sub)
      }, delay)
    }
    if (sub.status === 'active' && sub.consecutiveFailures >= sub.parkAfterFailures) {
      sub.status = 'parked'
      this.#logger.warn('subscription parked: its endpoint keeps failing; probing on the retry schedule', {
        subscriptionId: sub.id,
        consecutiveFailures: sub.consecutiveFailures,
        error: err,
      })
      this.#emit(() => this.#events.onParked?.(sub.id, { consecutiveFailures: sub.consecutiveFailures, error: err }))
    }
    this.#pump(sub)
  }

  /** An injected record that failed for good: out of its lane, its promise rejected. */
  #giveUp(sub: Sub, lane: Lane, entry: Entry, err: unknown): void {
    this.#completeHead(sub, lane)
    entry.injected!.reject(err)
  }

  /** The head stays first in line, to be tried again when the subscription is re-enabled. */
  #hold(sub: Sub, lane: Lane): void {
    lane.state = 'due'
    sub.due.push(lane)
  }

  #disable(sub: Sub, reason: EndpointDisabledReason, error: unknown): void {
    if (sub.status === 'disabled') return
    sub.status = 'disabled'
    this.#logger.warn('subscription disabled: records are held until it is re-enabled', {
      subscriptionId: sub.id,
      reason,
      error,
    })
    this.#emit(() => this.#events.onDisabled?.(sub.id, { reason, error }))
  }

  async #deadLetter(
    sub: Sub,
    lane: Lane,
    entry: Entry,
    error: unknown,
    reason: DeadLetterInfo['reason'],
  ): Promise<void> {
    lane.state = 'inflight'
    sub.inFlight++
    const info: DeadLetterInfo = { attempts: entry.attempts, firstAttemptAt: entry.firstAttemptAt, error, reason }
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#events.onDeadLetter(sub.id, entry.record, info)
        break
      } catch (err) {
        if (sub.removed) return
        this.#logger.error('dead letter could not be stored; retrying', {
          subscriptionId: sub.id,
          offset: entry.record.offset,
          attempt,
          error: err,
        })
        try {
          await sleep(backoffDelay({ initialDelayMs: 200, maxDelayMs: 30_000 }, attempt), sub.controller.signal)
        } catch {
          return
        }
      }
    }
    if (sub.removed) return
    sub.inFlight--
    this.#completeHead(sub, lane)
    this.#pump(sub)
  }

  #completeHead(sub: Sub, lane: Lane): void {
    const entry = lane.entries.shift()!
    if (--sub.buffered === 0) this.#holding.delete(sub.id)
    if (entry.pos) {
      entry.pos.done = true
      const pending = entry.track!.pending
      while (pending.peek()?.done) pending.shift()
    }
    if (lane.entries.length > 0) {
      lane.state = 'ready'
      sub.ready.push(lane)
    } else {
      sub.lanes.delete(lane.key)
    }
  }

  #guarded(sub: Sub, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#logger.error('delivery queue bookkeeping failed', { subscriptionId: sub.id, error: err })
    }
  }

  #emit(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#logger.error('delivery queue event handler threw', { error: err })
    }
  }
}
