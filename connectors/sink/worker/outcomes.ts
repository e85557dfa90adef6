/**
 * What became of each delivery: every attempt goes to the delivery log (successes too, unless
 * logDelivered is off), dead letters go to the dead-letter topic and the delivery log (with the
 * record's bytes, so a retry request re-delivers from there). The log's writes wait in a bounded
 * backlog while the store is slow or away (docs/sink-workers.md, "The delivery log while the store is
 * slow or away").
 */
import type { Producer } from '../../../common/kafka/index.ts'
import { MongoError, MongoNetworkError, MongoServerSelectionError } from 'mongodb'
import { SyndicationError } from '../../../common/errors.ts'
import { Limiter } from '../../../common/limiter.ts'
import type { Logger } from '../../../common/logger.ts'
import type { Metrics } from '../../../common/metrics.ts'
import { sleep } from '../../../common/timers.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import type { DeadLetterRecord, DeliveryDoc } from '../../../control-plane/types.ts'
import { DEAD_LETTER_HEADER } from '../../../schemas/topics.ts'
import { backoffDelay } from '../../retry.ts'
import type { DeadLetterInfo } from '../delivery-queue.ts'
import { publisherOf } from '../entitlement.ts'
import { rawOf, undeliverable } from '../records.ts'
import type { AttemptReport, SinkRecord } from '../types.ts'
import type { SinkWorkerSettings } from './config.ts'
import type { HeldRuns, Run } from './run.ts'

type DeadMark = Parameters<ControlPlane['deliveries']['markDead']>[0]

export interface OutcomesOptions {
  controlPlane: ControlPlane
  settings: SinkWorkerSettings
  held: HeldRuns
  log: Logger
  metrics: Metrics | undefined
  /** The worker's producer (connected at start): dead letters go to the dead-letter topic with it. */
  producer(): Producer
  /** The backlog fell below half of logBacklogMax while deliveries were held for it (delivery.ts looks again). */
  drained(): void
}

export class Outcomes {
  readonly #o: OutcomesOptions
  readonly #logChains = new Map<string, Promise<void>>()
  /** Delivery-log writes not written yet (the backlog: bounded by logBacklogMax with back-pressure). */
  #logPending = 0
  /** Deliveries wait for the delivery log's backlog to fall below half of logBacklogMax. */
  #logHeld = false
  /** Aborted when the worker gives up on the delivery log's backlog (stop). */
  readonly #logGiveUp = new AbortController()
  /**
   * Delivery-log writes in flight at most: a burst must not starve lease and cursor writes of connections (or, on
   * FerretDB, of SQLite's one writer).
   */
  readonly #logLimiter = new Limiter(4)
  #logDropped = 0

  constructor(o: OutcomesOptions) {
    this.#o = o
  }

  /** Delivery-log writes not written yet. */
  get backlog(): number {
    return this.#logPending
  }

  /** Whether deliveries wait for the delivery log (logBacklogMax writes behind, until half of them are written). */
  holds(): boolean {
    const max = this.#o.settings.logBacklogMax
    if (this.#logHeld || this.#logPending >= max) {
      this.#logHeld = this.#logPending >= max / 2
      if (this.#logHeld) return true
    }
    return false
  }

  /**
   * Waits for the delivery log's backlog (a slow store after a burst), but not for ever: the
   * deliveries themselves are confirmed and their positions written; a record left unwritten here is
   * a log line, not an event, and failures also live in the dead-letter topic.
   */
  async drain(timeoutMs: number): Promise<void> {
    const logged = Promise.allSettled([...this.#logChains.values()])
    let timer: NodeJS.Timeout | undefined
    const late = await Promise.race([
      logged.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ])
    clearTimeout(timer)
    if (late)
      this.#o.log.warn('stopped before the delivery log caught up: some attempts are not in the log', {
        pending: this.#logPending,
      })
    this.#logGiveUp.abort()
  }

  /** Once the delivery-log writes of this subscription issued so far are written (or given up). */
  async settledFor(subscriptionId: string): Promise<void> {
    const prefix = `${subscriptionId}\u0000`
    await Promise.allSettled([...this.#logChains].filter(([k]) => k.startsWith(prefix)).map(([, p]) => p))
  }

  /** One attempt at the partner (SinkContext.onAttempt): metrics, the run's last error, the delivery log. */
  onAttempt(run: Run, report: AttemptReport): void {
    const entry = run.inflight.get(report.eventId)
    if (!entry) return
    const delivered = report.outcome === 'delivered'
    if (!delivered && entry.signal.aborted) return // aborted here (stop, hand-over, fence): not the partner's failure
    const m = this.#o.metrics
    if (m) {
      const sink = run.sub.sink.type
      m.deliveries.inc({ sink, outcome: report.outcome })
      if (delivered) {
        const ageSeconds = Math.max(0, Date.now() - entry.record.timestamp) / 1000
        m.deliveryLatency.observe({ sink }, ageSeconds)
      }
    }
    if (!delivered)
      run.lastError = {
        code: report.code ?? 'FAILED',
        message: report.message ?? report.outcome,
        at: new Date(report.startedAt),
      }
    if (!delivered) run.failedLogged.add(report.eventId)
    else if (run.failedLogged.delete(report.eventId)) entry.forceLog = true
    if (delivered && (!this.#o.settings.logDelivered || run.sink?.recordsDeliveries === true) && !entry.forceLog) return
    const r = entry.record
    // #logWrite never rejects: a write that keeps failing is logged there
    void this.#logWrite(
      run.id,
      r.eventId,
      () =>
        this.#o.controlPlane.deliveries.recordAttempt({
          subscriptionId: run.id,
          partnerId: run.sub.partnerId,
          publisherId: publisherOf(r),
          eventId: r.eventId,
          eventType: r.eventType,
          key: r.key ?? '',
          source: { topic: r.topic, partition: r.partition, offset: r.offset },
          status: delivered ? 'delivered' : 'retrying',
          test: entry.test === true,
          attempt: {
            at: new Date(report.startedAt),
            durationMs: report.durationMs,
            statusCode: report.status ?? null,
            error: delivered ? null : `${report.code ?? 'FAILED'}: ${report.message ?? report.outcome}`,
            responseExcerpt: report.responseExcerpt ?? null,
          },
        }),
      delivered,
      true,
    )
  }

  /**
   * Delivery-log writes of one (subscription, event) in order (one document, one writer at a time).
   * An event's first attempt joins the delivery log's batch insert (not limited here: the batch is one
   * command); the others are upserts, a few at a time. A write the store did not take (unreachable,
   * a cleared pool) is tried again until it is written or the worker stops: the backlog of writes is
   * bounded by back-pressure instead (logBacklogMax: no partner call starts while it is full, until
   * half of it is written; `holds`), and successes are not logged while it is more than half full.
   */
  #logWrite(
    subId: string,
    eventId: string,
    fn: () => Promise<void>,
    droppable: boolean,
    batchable = false,
  ): Promise<void> {
    const { settings, log, controlPlane } = this.#o
    if (droppable && this.#logPending > settings.logBacklogMax / 2) {
      if (this.#logDropped++ % 1000 === 0)
        log.warn('delivery log behind: successful deliveries are not logged for now', { dropped: this.#logDropped })
      return Promise.resolve()
    }
    const key = `${subId}\u0000${eventId}`
    this.#logPending++
    const write = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await (batchable && controlPlane.deliveries.isFirstWrite(subId, eventId)
            ? fn()
            : this.#logLimiter.run(fn))
        } catch (err) {
          if (!storeUnavailable(err) || this.#logGiveUp.signal.aborted) throw err
          if (attempt === 1)
            log.warn('delivery log write failed: the store does not answer; trying again', {
              subscriptionId: subId,
              eventId,
              error: err,
            })
          await sleep(backoffDelay({ initialDelayMs: 500, maxDelayMs: 10_000 }, attempt), this.#logGiveUp.signal)
        }
      }
    }
    const prev = this.#logChains.get(key) ?? Promise.resolve()
    const next: Promise<void> = prev
      .then(write)
      .catch((err: unknown) => log.warn('delivery log write failed', { subscriptionId: subId, eventId, error: err }))
      .finally(() => {
        this.#logPending--
        if (this.#logChains.get(key) === next) this.#logChains.delete(key)
        if (this.#logHeld && this.#logPending < settings.logBacklogMax / 2) this.#o.drained()
      })
    this.#logChains.set(key, next)
    return next
  }

  /** A failed attempt or a disabled endpoint: the held run's last error (for its status). */
  noteError(id: string, error: unknown): void {
    const run = this.#o.held.runs.get(id)
    if (!run) return
    run.lastError = {
      code: error instanceof SyndicationError ? error.code : 'INTERNAL',
      message: error instanceof Error ? error.message : String(error),
      at: new Date(),
    }
  }

  /** The dead-letter topic first, then the delivery log; a throw makes the queue try again (the offset waits). */
  async deadLetter(id: string, record: SinkRecord, info: DeadLetterInfo): Promise<void> {
    const { settings, log, controlPlane } = this.#o
    const run = this.#o.held.runs.get(id)
    run?.failedLogged.delete(record.eventId) // its entry is closed as dead below
    const raw = rawOf(record)
    const err = info.error
    const poison = undeliverable(record, run?.sink)
    const code = err instanceof SyndicationError ? err.code : 'INTERNAL'
    const message = err instanceof Error ? err.message : String(err)
    const reason = poison
      ? `poison: ${message}`
      : info.reason === 'exhausted'
        ? `retries exhausted after ${info.attempts} attempts: ${message}`
        : `rejected: ${message}`
    const headers: Record<string, string> = {
      ...(raw?.headers ?? {}),
      [DEAD_LETTER_HEADER.reason]: reason,
      [DEAD_LETTER_HEADER.errorCode]: code,
      [DEAD_LETTER_HEADER.topic]: record.topic,
      [DEAD_LETTER_HEADER.partition]: String(record.partition),
      [DEAD_LETTER_HEADER.offset]: record.offset,
      [DEAD_LETTER_HEADER.attempts]: String(poison ? 0 : info.attempts),
      [DEAD_LETTER_HEADER.subscriptionId]: id,
      [DEAD_LETTER_HEADER.eventId]: record.eventId,
      [DEAD_LETTER_HEADER.at]: new Date().toISOString(),
    }
    const [meta] = await this.#o
      .producer()
      .send({ topic: settings.deadLetterTopic, messages: [{ key: id, value: raw?.value ?? null, headers }] })
    const deadLetter: DeadLetterRecord = {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key: raw?.key ? raw.key.toString('base64') : null,
      value: raw?.value ? raw.value.toString('base64') : null,
      headers: raw?.headers ?? {},
      deadLetterTopic: meta
        ? { topic: settings.deadLetterTopic, partition: meta.partition, offset: meta.baseOffset ?? meta.offset ?? '' }
        : null,
    }
    log.warn('record dead-lettered', {
      subscriptionId: id,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      eventId: record.eventId,
      code,
      reason,
    })
    await this.#logWrite(
      id,
      record.eventId,
      () =>
        controlPlane.deliveries.markDead({
          subscriptionId: id,
          partnerId: run?.sub.partnerId ?? '',
          publisherId: publisherOf(record),
          eventId: record.eventId,
          eventType: record.eventType,
          key: record.key ?? '',
          reason,
          source: { topic: record.topic, partition: record.partition, offset: record.offset },
          deadLetter,
        }),
      false,
    )
  }

  /** The delivery stays dead, with a new reason (its dead letter kept for another request). */
  /** A test event that was not delivered (its attempts are logged): dead, without a dead letter. */
  markTestFailed(run: Run, record: SinkRecord, reason: string): Promise<void> {
    const { eventId, eventType } = record
    return this.#markDead(run, { eventId, eventType, key: record.key ?? '', reason, test: true })
  }

  markDeadAgain(run: Run, doc: DeliveryDoc, reason: string): Promise<void> {
    const { eventId, eventType, key, source, deadLetter } = doc
    return this.#markDead(run, {
      eventId,
      eventType,
      key,
      reason,
      publisherId: doc.publisherId ?? null,
      source,
      deadLetter: deadLetter!,
    })
  }

  #markDead(
    run: Run,
    r: Pick<DeadMark, 'eventId' | 'eventType' | 'key' | 'reason'> & Partial<DeadMark>,
  ): Promise<void> {
    return this.#logWrite(
      run.id,
      r.eventId,
      () =>
        this.#o.controlPlane.deliveries.markDead({
          subscriptionId: run.id,
          partnerId: run.sub.partnerId,
          publisherId: null,
          source: null,
          deadLetter: null,
          ...r,
        }),
      false,
    )
  }
}

/** The store did not take a write (unreachable, too slow to be selected, a cleared pool): worth writing again. */
function storeUnavailable(err: unknown): boolean {
  return (
    err instanceof MongoNetworkError ||
    err instanceof MongoServerSelectionError ||
    (err instanceof MongoError && (err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('ResetPool')))
  )
}
