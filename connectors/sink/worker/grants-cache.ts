/**
 * The current grants of the partners this worker serves, held in memory and re-read in full every
 * `pollMs` (at least 1 s; a deleted grant leaves no trace to poll for), and applied at DELIVERY time
 * (entitlement.ts) on every path to a sink: a record no current grant covers is dropped (its position
 * advances, nothing is logged as a delivery, deliveries{outcome="filtered"} counts it), the rest is
 * projected. Grants older than `maxAgeMs` hold delivery (delivery.ts): a revoked grant must not be
 * delivered under.
 */
import { RetriableError } from '../../../common/errors.ts'
import type { Logger } from '../../../common/logger.ts'
import type { Metrics } from '../../../common/metrics.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import type { GrantDoc } from '../../../control-plane/types.ts'
import { decide } from '../entitlement.ts'
import { projected } from '../records.ts'
import type { SinkRecord } from '../types.ts'
import type { Run } from './run.ts'

export class GrantsCache {
  /** The current grants per partner of the held subscriptions, and when they were read. */
  readonly #grants = new Map<string, { grants: GrantDoc[]; at: number }>()

  constructor(
    private readonly controlPlane: ControlPlane,
    private readonly pollMs: number,
    private readonly log: Logger,
    private readonly metrics: Metrics | undefined,
  ) {}

  /** How old the held grants may be before delivery waits for fresh ones. */
  maxAgeMs(): number {
    return Math.max(10_000, 5 * this.pollMs)
  }

  /** Whether the partner's grants were read recently enough to deliver under. */
  fresh(partnerId: string): boolean {
    const held = this.#grants.get(partnerId)
    return held !== undefined && Date.now() - held.at <= this.maxAgeMs()
  }

  /** The held grants of a partner (none when they were not read). */
  of(partnerId: string): readonly GrantDoc[] {
    return this.#grants.get(partnerId)?.grants ?? []
  }

  /** The record as this subscription may receive it (projected), or null: no current grant covers it. */
  entitled(run: Run, record: SinkRecord): SinkRecord | null {
    const held = this.#grants.get(run.sub.partnerId)
    if (!held || Date.now() - held.at > this.maxAgeMs()) {
      throw new RetriableError('the partner grants could not be read recently: delivery waits for current ones', 1000, {
        subscriptionId: run.id,
        partnerId: run.sub.partnerId,
      })
    }
    const d = decide(record, run.sub, held.grants)
    if (!d.deliver) {
      this.metrics?.deliveries.inc({ sink: run.sub.sink.type, outcome: 'filtered' })
      this.log.debug('record not entitled: dropped', {
        subscriptionId: run.id,
        eventId: record.eventId,
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        reason: d.reason,
      })
      return null
    }
    return d.projected ? projected(record, d.value, d.fields) : record
  }

  /** Reads the full grant set of these partners (a deleted grant is noticed by its absence). */
  async load(partnerIds: string[]): Promise<void> {
    if (partnerIds.length === 0) return
    const at = Date.now()
    const grants = await this.controlPlane.cols.grants.find({ partnerId: { $in: partnerIds } }).toArray()
    for (const id of partnerIds) this.#grants.set(id, { grants: grants.filter((g) => g.partnerId === id), at })
  }

  /** Re-reads the grants of the partners of these runs, and forgets the others'. */
  async pass(runs: Iterable<Run>): Promise<void> {
    const partners = new Set<string>()
    for (const r of runs) partners.add(r.sub.partnerId)
    for (const id of this.#grants.keys()) if (!partners.has(id)) this.#grants.delete(id)
    await this.load([...partners])
  }
}
