/**
 * Dead-letter retry requests (docs/sink-workers.md, "Dead-letter retry requests"): taken per held
 * subscription, each subscription's in turn; a dead letter goes again in its key's lane, unless a
 * newer version of its key was read since. Test events are requests of this queue too (test-event.ts).
 */
import { Limiter } from '../../../common/limiter.ts'
import type { Logger } from '../../../common/logger.ts'
import { encodeCursor } from '../../../control-plane/store.ts'
import type { DeliveryDoc, RetryProgress, RetryRequestDoc } from '../../../control-plane/types.ts'
import { DEFAULT_SHORT_POLICY } from '../../retry.ts'
import { laneKey, type DeliveryQueue } from '../delivery-queue.ts'
import { DecodedMessage, deadLetterMessage, loadSchemas, rawOf, undeliverable } from '../records.ts'
import { countBelow, scanLatest, type ScanRange } from '../scan.ts'
import { tpKey } from '../store.ts'
import type { SinkRecord } from '../types.ts'
import type { SinkWorkerDeps, SinkWorkerSettings } from './config.ts'
import { NOT_ENTITLED, type Delivery } from './delivery.ts'
import type { GrantsCache } from './grants-cache.ts'
import type { Outcomes } from './outcomes.ts'
import type { Positions } from './positions.ts'
import type { HeldRuns, Run } from './run.ts'
import { sendTestEvent } from './test-event.ts'

/** How often a worker completes the retry requests of deleted subscriptions. */
export const RETRY_SWEEP_MS = 30_000

/** Dead letters a retry of every dead letter takes at a time (#retryAll; settings.retryPageSize in tests). */
export const RETRY_PAGE_SIZE = 1000

/** A dead letter delivered again on request: a few quick attempts, then it stays dead (with the reason). */
const REDELIVERY_POLICY = { ...DEFAULT_SHORT_POLICY, maxAttempts: 3 }
const SUPERSEDED =
  'not re-delivered: a newer record of its key was read since (delivering it ' +
  'now would put an older version after a newer one)'

export interface RetryRequestsOptions {
  deps: SinkWorkerDeps
  settings: SinkWorkerSettings
  queue: DeliveryQueue
  held: HeldRuns
  positions: Positions
  delivery: Delivery
  grants: GrantsCache
  outcomes: Outcomes
  log: Logger
  unknownSchemas: Set<number>
}

type Counts = { redelivered: number; superseded: number; failed: number }

/** A retry request's outcome: what was re-delivered of the dead letters it took, and what was not. */
function outcomeOf(c: Counts, of: number): string {
  const more = [
    c.superseded > 0 ? `${c.superseded} superseded by a newer record of their key` : '',
    c.failed > 0 ? `${c.failed} failed` : '',
  ].filter(Boolean)
  return [`re-delivered ${c.redelivered} of ${of}`, ...more].join('; ')
}

/** Whether a delivery comes after `at` in the order a retry of every dead letter takes them (createdAt, then `_id`). */
function isAfter(d: Pick<DeliveryDoc, 'createdAt' | '_id'>, at: { createdAt: Date; _id: string }): boolean {
  const t = d.createdAt.getTime() - at.createdAt.getTime()
  return t > 0 || (t === 0 && d._id > at._id)
}

export class RetryRequests {
  readonly #o: RetryRequestsOptions
  /** Kafka scans of retry requests (#redeliverInLanes) at a time. */
  readonly #scans = new Limiter(2)
  /** Retry requests being performed, per subscription (one at a time each). */
  readonly #retrying = new Map<string, Promise<void>>()
  #nextSweep = 0

  constructor(o: RetryRequestsOptions) {
    this.#o = o
  }

  /** Waits for the requests under way (a stop: their runs stopped first, so each ends soon). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#retrying.values()])
  }

  /** Waits for the requests of this subscription under way (its run stopped first). */
  async settledFor(subscriptionId: string): Promise<void> {
    await this.#retrying.get(subscriptionId)
  }

  /**
   * Retry requests: the oldest pending one of each held subscription, each subscription's in turn and
   * in the background (one subscription's long retry holds up no other's, nor this pass). Requests of
   * deleted subscriptions are completed with that outcome (every RETRY_SWEEP_MS); a stopped
   * subscription's wait until it runs again (docs/sink-workers.md).
   */
  async pass(): Promise<void> {
    const { held, log } = this.#o
    const cp = this.#o.deps.controlPlane
    if (Date.now() >= this.#nextSweep) {
      this.#nextSweep = Date.now() + RETRY_SWEEP_MS
      const completed = await cp.deliveries.completeRetryRequestsOfDeleted()
      if (completed > 0) log.info('retry requests of deleted subscriptions completed', { count: completed })
    }
    // the subscriptions with pending requests first (few): not the ids of every held one, each pass
    const idle = (await cp.deliveries.subscriptionsWithRetryRequests()).filter((id) => {
      const r = held.runs.get(id)
      return r !== undefined && !r.failure && !r.stopped && !this.#retrying.has(id)
    })
    for (const first of await cp.deliveries.nextRetryRequests(idle)) {
      const run = held.runs.get(first.subscriptionId)
      if (!run || run.failure || run.stopped || this.#retrying.has(run.id)) continue
      // this subscription's requests one after the other, until none is left (or the run stops)
      const drain = async () => {
        for (let req: RetryRequestDoc | undefined = first; req && (await this.#request(run, req));)
          req = (await cp.deliveries.nextRetryRequests([run.id]))[0]
      }
      const done = drain()
        .catch((err: unknown) =>
          log.warn('retry request failed; it is taken up again', { subscriptionId: run.id, error: err }),
        )
        .finally(() => this.#retrying.delete(run.id))
      this.#retrying.set(run.id, done)
    }
  }

  /**
   * Re-delivers what a retry request names from the stored dead letters, then completes it; false when the run stopped
   * first (its next holder does it, or goes on with it: #retryAll).
   */
  async #request(run: Run, req: RetryRequestDoc): Promise<boolean> {
    const cp = this.#o.deps.controlPlane
    if (req.kind === 'test') {
      const outcome = await sendTestEvent(
        { ...this.#o, serde: this.#o.deps.serde, topics: this.#o.deps.topics },
        run,
        req,
      )
      if (outcome === null) return false
      await cp.deliveries.completeRetryRequest(req._id, outcome)
      return true
    }
    if (req.kind === 'dead-letters') return this.#retryAll(run, req)
    const doc = await cp.deliveries.get(req.subscriptionId, req.eventId!)
    const out = { redelivered: 0, superseded: 0, failed: 0 }
    if (!(await this.#redeliver(run, doc ? [doc] : [], out))) return false
    await cp.deliveries.completeRetryRequest(req._id, outcomeOf(out, doc ? 1 : 0))
    return true
  }

  /**
   * A retry of every dead letter, a page at a time (retryPageSize, oldest first: retryableDeadLetters): none is left
   * out however many there are, and a worker holds one page's dead letters at a time. Before a page the request notes
   * the page's last dead letter (RetryProgress.through), after it where the next page starts: a worker that takes the
   * request up again (a restart, a hand-over) goes on with the page that was cut off, taking again those of its dead
   * letters still dead and those its previous holder had begun to deliver again (retrying), not those delivered by
   * then. Done after the last page.
   */
  async #retryAll(run: Run, req: RetryRequestDoc): Promise<boolean> {
    const cp = this.#o.deps.controlPlane
    const limit = this.#o.settings.retryPageSize ?? RETRY_PAGE_SIZE
    let p: RetryProgress = req.progress ?? {
      cursor: null,
      through: null,
      taken: 0,
      redelivered: 0,
      superseded: 0,
      failed: 0,
    }
    for (;;) {
      const cut = p.through
      const found = await cp.deliveries.retryableDeadLetters(
        run.id,
        { limit, cursor: p.cursor ?? undefined },
        { retrying: cut !== null },
      )
      const docs = found.items.filter((d) => d.status === 'dead' || (cut !== null && !isAfter(d, cut)))
      const last = found.items.at(-1)
      const through = last ? { createdAt: last.createdAt, _id: last._id } : null
      if (through && (!cut || isAfter(through, cut)))
        await cp.deliveries.noteRetryProgress(req._id, (p = { ...p, through }))
      const out = { redelivered: 0, superseded: 0, failed: 0 }
      if (!(await this.#redeliver(run, docs, out))) return false
      p = {
        cursor: through ? encodeCursor(through._id, through.createdAt) : p.cursor,
        through: null,
        taken: p.taken + docs.length,
        redelivered: p.redelivered + out.redelivered,
        superseded: p.superseded + out.superseded,
        failed: p.failed + out.failed,
      }
      await cp.deliveries.noteRetryProgress(req._id, p) // the last page's too: the counts of a done request are whole
      if (found.nextCursor === null) break
    }
    await cp.deliveries.completeRetryRequest(req._id, outcomeOf(p, p.taken))
    return true
  }

  /** Delivers these dead letters again (#redeliverInLanes), counting into `out`; false when the run stopped first. */
  async #redeliver(run: Run, docs: DeliveryDoc[], out: Counts): Promise<boolean> {
    const items: Array<{ doc: DeliveryDoc; record: SinkRecord }> = []
    for (const doc of docs) {
      if (run.stopped) return false
      const record = await this.#deadLetterRecord(run, doc)
      if (record) items.push({ doc, record })
      else if (doc.deadLetter) out.failed++
    }
    await this.#redeliverInLanes(run, items, out)
    return !run.stopped
  }

  /**
   * The stored dead letter of `doc` as a record to deliver again; null when there is none, or it cannot be (poison, not
   * entitled: so marked).
   */
  async #deadLetterRecord(run: Run, doc: DeliveryDoc): Promise<SinkRecord | null> {
    const { deps, outcomes } = this.#o
    const dl = doc.deadLetter
    if (!dl) {
      this.#o.log.warn('retry request for a delivery without a stored dead letter: nothing to re-deliver', {
        subscriptionId: run.id,
        eventId: doc.eventId,
        status: doc.status,
      })
      return null
    }
    const message = deadLetterMessage(dl)
    await loadSchemas(deps.serde, [message], this.#o.unknownSchemas).catch(() => undefined)
    const record = new DecodedMessage(deps.serde, dl.topic, dl.partition, message).record(run.readers.get(dl.topic))
    // entitlement before poison, as in Delivery.deliver
    await this.#o.delivery.deliverable(run, undefined)
    if (!this.#o.grants.entitled(run, record)) {
      await outcomes.markDeadAgain(run, doc, `retry failed: ${NOT_ENTITLED}`)
      return null
    }
    const poison = undeliverable(record, run.sink)
    if (poison) {
      await outcomes.markDeadAgain(run, doc, `retry failed: poison: ${poison.message}`)
      return null
    }
    return record
  }

  /**
   * Delivers dead letters again, each in its key's lane (DeliveryQueue.inject: never beside nor
   * before another record of its key), unless it is SUPERSEDED: a newer record of its key was read by
   * the subscription since, and delivering it now would put an older version after a newer one. A
   * dead letter is superseded by a later dead letter of its key in the request, by a newer record of its
   * key in its partition below what the subscription had read when this began (one Kafka scan per
   * request, from the oldest dead letter), by one enqueued since (a watch), or by one its lane holds.
   * Superseded ones stay dead, with the reason. Resolves once every one is delivered or failed again.
   */
  async #redeliverInLanes(
    run: Run,
    items: Array<{ doc: DeliveryDoc; record: SinkRecord }>,
    out: Counts,
  ): Promise<void> {
    const { queue, positions, outcomes, log } = this.#o
    if (items.length === 0 || run.stopped) return
    const latest = new Map<string, number>()
    for (const { record } of items)
      if (record.key !== null)
        latest.set(laneKey(record), Math.max(latest.get(laneKey(record)) ?? -1, Number(record.offset)))
    const superseded: DeliveryDoc[] = []
    const live = items.filter(({ doc, record }) => {
      const keep = record.key === null || Number(record.offset) === latest.get(laneKey(record))
      if (!keep) superseded.push(doc)
      return keep
    })
    // In one tick: watch each key, and note how far the subscription has read each partition.
    const watches = live.map(({ record }) => (record.key === null ? null : queue.watch(run.id, record)))
    const ranges = new Map<string, ScanRange & { seed: Array<{ key: Buffer | null; offset: number }> }>()
    const scanned = new Set<SinkRecord>()
    for (const { record } of live) {
      const k = tpKey(record.topic, record.partition)
      const part = run.parts.get(k)
      const offset = Number(record.offset)
      if (record.key === null || !part || offset + 1 >= positions.seen(part)) continue
      let range = ranges.get(k)
      if (!range)
        ranges.set(
          k,
          (range = {
            topic: record.topic,
            partition: record.partition,
            from: offset + 1,
            high: positions.seen(part),
            seed: [],
          }),
        )
      range.from = Math.min(range.from, offset + 1)
      range.seed.push({ key: rawOf(record)?.key ?? null, offset })
      scanned.add(record)
    }
    const pending: Array<Promise<void>> = []
    try {
      const winners =
        ranges.size === 0
          ? new Map<string, Float64Array>()
          : await this.#scans.run(
              () =>
                scanLatest({
                  kafka: this.#o.deps.kafka,
                  groupId: `${this.#o.settings.groupId}.retry.${run.id}`,
                  ranges: [...ranges.values()],
                  deliverable: () => true,
                  logger: log,
                }).result,
            )
      if (run.stopped) return
      // In one tick with the watches' verdicts: queued behind what the lane holds (or refused when it holds anything).
      live.forEach(({ doc, record }, i) => {
        const w = winners.get(tpKey(record.topic, record.partition))
        const offset = Number(record.offset)
        const newer =
          (scanned.has(record) && !(w && w[countBelow(w, offset)] === offset)) || watches[i]?.enqueuedSince() === true
        const delivered = newer
          ? null
          : queue.inject(run.id, record, {
              deliver: (r, { signal }) => this.#o.delivery.deliver(run, r, signal, 'redelivery'),
              policy: REDELIVERY_POLICY,
              ifLatest: record.key !== null,
            })
        if (!delivered) return void superseded.push(doc)
        pending.push(
          delivered.then(
            () => {
              out.redelivered++
              log.info('dead letter re-delivered on request', { subscriptionId: run.id, eventId: record.eventId })
            },
            async (err: unknown) => {
              if (run.stopped) return
              out.failed++
              await outcomes.markDeadAgain(
                run,
                doc,
                `retry failed: ${err instanceof Error ? err.message : String(err)}`,
              )
            },
          ),
        )
      })
    } finally {
      for (const w of watches) w?.close()
    }
    await Promise.all(pending)
    for (const doc of superseded) await outcomes.markDeadAgain(run, doc, SUPERSEDED)
    out.superseded += superseded.length
  }
}
