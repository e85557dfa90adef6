/**
 * The deal and lead expiry job (docs/deals.md), run by every API process every DEALS_EXPIRY_INTERVAL_MS:
 *
 * - an approval whose protection ended becomes `expired` (its claims go), and every registration
 *   waiting in `conflict_review` on it that nothing else blocks goes back to `under_review`;
 * - an approval whose protection ends within the publisher's reminder days gets one `deal.expiring`
 *   event (a step that changes no state and sets `reminderSentAt`);
 * - a lead not answered by its deadline expires back to its publisher (leads.ts);
 * - a step decided (its transition inserted) but not applied to the deal (a crash between the two
 *   writes) is rolled forward, its event sent: the sweep reads the transitions of the last
 *   SWEEP_WINDOW_MS (the first pass of a process: the last day, to cover its own downtime).
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
  /** Deals whose decided steps were applied by the sweep. */
  rolledForward: number
}

/** How far back a pass looks for decided steps not applied, after the first pass of a process. */
export const SWEEP_WINDOW_MS = 10 * 60_000

const PLATFORM = (job: string): StepOrigin => ({ actor: 'platform', organizationId: null, via: 'platform', ref: job })
const BATCH = 200
const DAY_MS = 86_400_000

export class DealExpiry {
  #swept = false

  constructor(
    private readonly deals: Deals,
    private readonly leads: Leads | undefined,
    private readonly logger: Logger,
  ) {}

  /** One pass; `now` for tests. */
  async runOnce(now = new Date()): Promise<ExpiryResult> {
    const out: ExpiryResult = { expired: 0, reminded: 0, released: 0, leadsExpired: 0, rolledForward: 0 }
    out.rolledForward = await this.rollForward(now)
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
  /** Applies the decided steps no deal document shows yet (their events pended on the way). */
  private async rollForward(now: Date): Promise<number> {
    const since = new Date(now.getTime() - (this.#swept ? SWEEP_WINDOW_MS : DAY_MS))
    this.#swept = true
    const cols = this.deals.cols
    const latest = new Map<string, number>()
    for (const t of await cols.dealTransitions
      .find({ at: { $gte: since } }, { projection: { dealId: 1, version: 1 } })
      .toArray())
      latest.set(t.dealId, Math.max(latest.get(t.dealId) ?? 0, t.version))
    if (latest.size === 0) return 0
    const versions = new Map<string, number>()
    for (const d of await cols.deals
      .find({ _id: { $in: [...latest.keys()] } }, { projection: { _id: 1, version: 1 } })
      .toArray())
      versions.set(d._id, d.version)
    let n = 0
    for (const [dealId, version] of latest) {
      // no document at all: the registration's first step was decided, its document never written
      const had = versions.get(dealId) ?? 0
      if (had >= version) continue
      await this.deals.store.load(dealId) // rolls the decided steps forward
      this.logger.warn('deal step decided but not applied (a crash between its writes): applied now', {
        dealId,
        from: had,
        to: version,
      })
      n++
    }
    return n
  }

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
