/**
 * The deal and lead expiry job (docs/deals.md), run by every API process every DEALS_EXPIRY_INTERVAL_MS:
 *
 * - an approval whose protection ended becomes `expired` (its claims go), and every registration
 *   waiting in `conflict_review` on it that nothing else blocks goes back to `under_review`;
 * - an approval whose protection ends within the publisher's reminder days gets one `deal.expiring`
 *   event (a step that changes no state and sets `reminderSentAt`);
 * - a lead not answered by its deadline expires back to its publisher (leads.ts).
 *
 * Idempotent and safe with several workers: every change is a step (store.ts), decided by the insert
 * of its transition, with a precondition checked again on every attempt; a worker that lost a race
 * finds the step done and skips it.
 */
import type { Logger } from '../../common/logger.ts'
import { TransitionConflictError } from './machine.ts'
import type { Deals } from './service.ts'
import type { Leads } from './leads.ts'
import type { StepOrigin } from './types.ts'

export interface ExpiryResult {
  expired: number
  reminded: number
  released: number
  leadsExpired: number
}

const PLATFORM = (job: string): StepOrigin => ({ actor: 'platform', organizationId: null, via: 'platform', ref: job })
const BATCH = 200
const DAY_MS = 86_400_000

export class DealExpiry {
  constructor(
    private readonly deals: Deals,
    private readonly leads: Leads | undefined,
    private readonly logger: Logger,
  ) {}

  /** One pass; `now` for tests. */
  async runOnce(now = new Date()): Promise<ExpiryResult> {
    const out: ExpiryResult = { expired: 0, reminded: 0, released: 0, leadsExpired: 0 }
    const cols = this.deals.cols
    const due = await cols.deals
      .find({ state: 'approved', protectionExpiresAt: { $lte: now } }, { projection: { _id: 1 } })
      .limit(BATCH)
      .toArray()
    for (const { _id } of due) {
      const done = await this.quietly(() =>
        this.deals.store.step(_id, 'expire', PLATFORM('expiry'), {
          reason: 'the protection period ended',
          precondition: (d) => d.state === 'approved' && d.protectionExpiresAt !== null && d.protectionExpiresAt <= now,
        }),
      )
      if (done) out.expired++
      // also when another worker expired it: releasing is idempotent
      out.released += await this.releaseWaiting(_id, now)
    }
    out.reminded = await this.remind(now)
    if (this.leads) out.leadsExpired = await this.leads.expireDue(now)
    return out
  }

  /** Registrations in conflict_review that waited on `dealId` and on nothing else go back to review. */
  private async releaseWaiting(dealId: string, now: Date): Promise<number> {
    const waiting = await this.deals.cols.deals
      .find({ state: 'conflict_review', conflictsWith: dealId })
      .limit(BATCH)
      .toArray()
    let n = 0
    for (const w of waiting) {
      const blocking = await this.deals.store.conflicts(w, now)
      if (blocking.some((id) => w.conflictsWith.includes(id) && id !== dealId)) continue
      const done = await this.quietly(() =>
        this.deals.store.step(w._id, 'release', PLATFORM('expiry'), {
          reason: `registration ${dealId} no longer holds the customer`,
          precondition: (d) => d.state === 'conflict_review',
          plan: () => ({ set: { conflictsWith: [] } }),
        }),
      )
      if (done) n++
    }
    return n
  }

  private async remind(now: Date): Promise<number> {
    const cols = this.deals.cols
    // the longest reminder window any publisher may set is 3650 days; each deal is checked against its publisher's
    const candidates = await cols.deals
      .find(
        { state: 'approved', reminderSentAt: null, protectionExpiresAt: { $gt: now } },
        { projection: { _id: 1, manufacturerId: 1, protectionExpiresAt: 1 } },
      )
      .limit(BATCH * 5)
      .toArray()
    const programs = new Map<string, number>()
    let n = 0
    for (const c of candidates) {
      let days = programs.get(c.manufacturerId)
      if (days === undefined) {
        days = (await this.deals.program(c.manufacturerId)).reminderDays
        programs.set(c.manufacturerId, days)
      }
      if (c.protectionExpiresAt!.getTime() - now.getTime() > days * DAY_MS) continue
      const done = await this.quietly(() =>
        this.deals.store.step(c._id, 'remind', PLATFORM('expiry'), {
          reason: `the protection period ends within ${days} days`,
          precondition: (d) => d.state === 'approved' && d.reminderSentAt === null,
          plan: (_d, _to, at) => ({ set: { reminderSentAt: at } }),
        }),
      )
      if (done) n++
    }
    return n
  }

  /** A step another worker (or a publisher) made moot is no failure of the job. */
  private async quietly<T>(run: () => Promise<T | null>): Promise<T | null> {
    try {
      return await run()
    } catch (err) {
      if (err instanceof TransitionConflictError) return null
      this.logger.warn('deal expiry step failed; the next pass retries', { err })
      return null
    }
  }
}
