/**
 * One record to a run's sink, and the holds before it. A CONTROL-PLANE OUTAGE holds delivery: while
 * the leases are not surely this worker's (not renewed for 0.8 x leaseTtlMs: another worker may take
 * them over soon) or a partner's grants are older than GrantsCache.maxAgeMs (a revoked grant must not
 * be delivered under), every delivery waits before calling the partner. It is not an attempt: nothing
 * is logged, no retry schedule advances, nothing parks, disables or dead-letters; records stay in
 * their lanes (the readers stop at maxBuffered). Delivery resumes at the first lease renewal and
 * grants read that succeed (within about a heartbeat of the store's return). So does a delivery log
 * that is logBacklogMax writes behind (outcomes.ts).
 */
import { SyndicationError } from '../../../common/errors.ts'
import type { Logger } from '../../../common/logger.ts'
import { activeSpan } from '../../../common/tracing.ts'
import { undeliverable } from '../records.ts'
import type { SinkRecord } from '../types.ts'
import type { GrantsCache } from './grants-cache.ts'
import type { Outcomes } from './outcomes.ts'
import { FENCED, signalled, type Run } from './run.ts'

export const NOT_ENTITLED = 'not entitled: no current grant covers this record, so it is not re-delivered'

export interface DeliveryOptions {
  grants: GrantsCache
  outcomes: Outcomes
  log: Logger
  /** Whether the leases are surely this worker's (ownership.ts). */
  leaseValid(): boolean
}

/** live: a record the subscription read; redelivery: a dead letter again on request; test: a test event. */
export type DeliveryMode = 'live' | 'redelivery' | 'test'

export class Delivery {
  readonly #o: DeliveryOptions
  /** Resolved, and replaced, after every lease and grants pass: deliveries held by `deliverable` look again. */
  #passed = signalled()
  /** Since when deliveries are held (`deliverable`), 0 while they are not. */
  #heldSince = 0

  constructor(o: DeliveryOptions) {
    this.#o = o
  }

  /**
   * One record to the run's sink; `redelivery`: a dead letter delivered again on request (refused when
   * not entitled, always logged); `test`: a test event (an example, no publisher's data: no grant is
   * needed; always logged). Held while the control plane does not answer (`deliverable`); a call the
   * lease fence aborted is no attempt: it waits for the leases and goes again.
   */
  async deliver(run: Run, original: SinkRecord, signal: AbortSignal, mode: DeliveryMode = 'live'): Promise<void> {
    const redelivery = mode === 'redelivery'
    // Entitlement first: a record no accepted grant covers (a tombstone or an undecodable record of
    // another publisher included) is none of this partner's business, not even as a dead letter
    // showing its key and publisher in the partner's delivery log.
    for (;;) {
      await this.deliverable(run, signal)
      const record = mode === 'test' ? original : this.#o.grants.entitled(run, original)
      if (!record && redelivery)
        throw new SyndicationError('FORBIDDEN', NOT_ENTITLED, false, {
          subscriptionId: run.id,
          eventId: original.eventId,
        })
      // not entitled: done, nothing delivered
      if (!record) return void activeSpan()?.setAttribute('distributary.delivery.filtered', true)
      const poison = undeliverable(original, run.sink)
      if (poison) throw poison
      const calls = run.calls
      const entry = { record, forceLog: mode !== 'live', signal: calls.signal, test: mode === 'test' }
      run.inflight.set(record.eventId, entry)
      try {
        await run.sink!.put([record], { signal: calls.signal })
        return
      } catch (err) {
        if (calls.signal.reason !== FENCED || run.stopped || signal.aborted) throw err
      } finally {
        if (run.inflight.get(record.eventId) === entry) run.inflight.delete(record.eventId)
      }
    }
  }

  /** Why deliveries of this run are held now (the control plane does not answer), or null. */
  #holdReason(run: Run): string | null {
    if (!this.#o.leaseValid()) return 'the leases could not be renewed'
    if (run.leaving) return 'the subscription is leaving this worker'
    if (this.#o.outcomes.holds()) return 'the delivery log is behind'
    if (!this.#o.grants.fresh(run.sub.partnerId)) return 'the partner grants could not be read'
    return null
  }

  /**
   * Waits while the control plane does not answer (#holdReason): a held delivery is no attempt, so no
   * retry schedule advances and nothing parks or dead-letters. Looked at again after every lease and
   * grants pass; rejects with the signal's reason once the run is stopped.
   */
  async deliverable(run: Run, signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason
      const why = this.#holdReason(run)
      if (why === null) break
      if (this.#heldSince === 0) {
        this.#heldSince = Date.now()
        this.#o.log.warn(
          'control-plane store not answering: delivery held (no attempts; retry ' +
            'schedules, parking and dead letters untouched) until it answers',
          { reason: why },
        )
      }
      await this.#passed.promise
    }
    if (this.#heldSince !== 0) {
      this.#o.log.info('control-plane store answers again: delivery resumed', { heldMs: Date.now() - this.#heldSince })
      this.#heldSince = 0
    }
  }

  /** Held deliveries look again (after a lease or grants pass, a stop, a drained delivery log). */
  wake(): void {
    const passed = this.#passed
    this.#passed = signalled()
    passed.resolve()
  }
}
