/**
 * How a deal moves (docs/deals.md, types.ts): one step at a time, decided by the insert of its
 * transition under `<dealId>:<version>`, then applied to the deal document with its event in the
 * outbox. Conflicts are looked up here, and approvals hold claims.
 *
 * Safe under concurrency without transactions, on FerretDB as on MongoDB: two steps from one version
 * race for one unique `_id`; the loser reads the new state and is refused (409) when its action is no
 * longer allowed there, or goes again (a resubmit after a review, say). Two approvals of one
 * opportunity race for the claims' unique `_id`s: one wins, the other is a 409.
 */
import { isDuplicateKey } from '../../common/store-errors.ts'
import { ConflictError, NotFoundError } from '../errors.ts'
import type { Collections } from '../store.ts'
import { dealEntry } from './contract.ts'
import { nextState, PENDING_STATES, type Actor, type DealAction, type DealState } from './machine.ts'
import { pendingEventId, type DealDoc, type DealTransitionDoc, type StepOrigin } from './types.ts'

/** What a step changes besides the state (computed from the deal as read). */
export type StepChanges = Partial<Omit<DealDoc, '_id' | 'version' | 'state'>>

export interface StepPlan {
  /** Where the step leads (default: the state machine's answer). */
  to?: DealState
  set?: StepChanges
}

export interface StepOptions {
  reason?: string | null
  /** false: skip the step silently (the deal no longer needs it, e.g. already reminded); checked on every attempt. */
  precondition?: (deal: DealDoc) => boolean
  /** Computes the step's changes from the deal as read (on every attempt). */
  plan?: (deal: DealDoc, to: DealState, now: Date) => Promise<StepPlan> | StepPlan
  /** The actor whose view of the allowed actions applies (undefined: an admin, either side). */
  actor?: Actor
}

const CLAIM_SEPARATOR = '|'

export class DealStore {
  constructor(
    private readonly cols: Collections,
    private readonly written: () => void,
  ) {}

  /** The deal with any step already decided (in its transitions) but not yet applied rolled forward. */
  async load(id: string, rollForward = true): Promise<DealDoc | null> {
    let deal = await this.cols.deals.findOne({ _id: id })
    if (!deal && rollForward) deal = await this.created(id)
    if (!deal || !rollForward) return deal
    const ahead = await this.cols.dealTransitions
      .find({ dealId: id, version: { $gt: deal.version } })
      .sort({ version: 1 })
      .toArray()
    for (const t of ahead) deal = await this.apply(deal, t)
    return deal
  }

  /** A registration whose first step was decided but whose document was never written (a crash): written now. */
  private async created(id: string): Promise<DealDoc | null> {
    const t = await this.cols.dealTransitions.findOne({ _id: `${id}:1` })
    if (!t) return null
    await this.pend(t)
    const deal = { ...t.set, _id: id, state: t.to, version: t.version, updatedAt: t.at } as DealDoc
    try {
      await this.cols.deals.insertOne(deal)
      this.written()
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      return this.cols.deals.findOne({ _id: id })
    }
    return deal
  }

  async history(id: string): Promise<DealTransitionDoc[]> {
    return this.cols.dealTransitions.find({ dealId: id }).sort({ version: 1 }).toArray()
  }

  /**
   * Moves the deal document from the version before `t` to `t`'s (whoever decided it: same content
   * either way), its event pending first.
   */
  private async apply(deal: DealDoc, t: DealTransitionDoc): Promise<DealDoc> {
    await this.pend(t)
    const after: DealDoc = { ...deal, ...t.set, state: t.to, version: t.version, updatedAt: t.at }
    const { _id, ...fields } = after
    await this.cols.deals.updateOne({ _id, version: deal.version }, { $set: fields })
    this.written()
    return after
  }

  /** The step's event, for the relay (a second insert, by a roll-forward, finds it there). */
  private async pend(t: DealTransitionDoc): Promise<void> {
    try {
      await this.cols.dealOutbox.insertOne({
        _id: pendingEventId(t.dealId, t.version),
        outbox: [t.event],
        outboxAt: t.at,
      })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
  }

  /** A new registration: its first step (`submit`), its event and the document. */
  async create(deal: DealDoc, origin: StepOrigin): Promise<DealDoc> {
    const t = this.transition(deal, null, 'submit', origin, null)
    await this.cols.dealTransitions.insertOne(t)
    await this.pend(t)
    await this.cols.deals.insertOne(deal)
    this.written()
    return deal
  }

  private transition(
    after: DealDoc,
    from: DealState | null,
    action: DealAction,
    by: StepOrigin,
    reason: string | null,
  ): DealTransitionDoc {
    const { _id, version: _v, ...set } = after
    return {
      _id: `${_id}:${after.version}`,
      dealId: _id,
      version: after.version,
      from,
      to: after.state,
      action,
      by,
      reason,
      at: after.updatedAt,
      set,
      event: dealEntry(after, action, after.updatedAt),
    }
  }

  /**
   * One step of a deal: refused with 409 (TransitionConflictError) when the action is not allowed in
   * the state it finds; returns null when the precondition says the step is not needed any more.
   */
  async step(id: string, action: DealAction, origin: StepOrigin, options: StepOptions = {}): Promise<DealDoc | null> {
    for (let attempt = 0; attempt < 8; attempt++) {
      // a step decided but not applied (a crash between the two writes) shows as a lost insert: rolled forward then
      const deal = await this.load(id, attempt > 0)
      if (!deal) throw new NotFoundError('deal', { dealId: id })
      if (options.precondition && !options.precondition(deal)) return null
      const now = new Date(Math.max(Date.now(), deal.updatedAt.getTime()))
      const natural = nextState(id, deal.state, action, options.actor)
      const plan = options.plan ? await options.plan(deal, natural, now) : {}
      const to = plan.to ?? natural
      const reason = options.reason ?? null
      const after: DealDoc = { ...deal, ...plan.set, state: to, version: deal.version + 1, updatedAt: now }
      const claimed = to === 'approved' && deal.state !== 'approved' ? await this.claim(after) : []
      const t = this.transition(after, deal.state, action, origin, reason)
      try {
        await this.cols.dealTransitions.insertOne(t)
      } catch (err) {
        if (!isDuplicateKey(err)) {
          await this.unclaim(id, claimed)
          throw err
        }
        // another step from this version won: read the state it left, and try again from there
        const now2 = await this.load(id)
        if (now2?.state !== 'approved') await this.unclaim(id, claimed)
        continue
      }
      const applied = await this.apply(deal, t)
      if (deal.state === 'approved' && to !== 'approved') await this.releaseClaims(id)
      return applied
    }
    throw new ConflictError(`deal ${id} changed concurrently too often; read it again and retry`, 'action')
  }

  /** Claims (manufacturer, customer, product) for an approval: all or none; 409 naming the approval that holds one. */
  private async claim(deal: DealDoc): Promise<string[]> {
    const inserted: string[] = []
    const now = new Date()
    const expiresAt = deal.protectionExpiresAt ?? new Date(8.64e15)
    for (const sku of deal.products) {
      const _id = [deal.manufacturerId, deal.customerKey, sku].join(CLAIM_SEPARATOR)
      for (let tries = 0; ; tries++) {
        try {
          await this.cols.dealClaims.insertOne({ _id, dealId: deal._id, createdAt: now, expiresAt })
          inserted.push(_id)
          break
        } catch (err) {
          if (!isDuplicateKey(err)) {
            await this.unclaim(deal._id, inserted)
            throw err
          }
        }
        const holder = await this.cols.dealClaims.findOne({ _id })
        if (holder?.dealId === deal._id) break // this deal's own (a retried approval)
        if (holder && holder.expiresAt.getTime() <= now.getTime() && tries < 2) {
          // an approval whose protection ended before the expiry job ran: taken over exactly as read
          await this.cols.dealClaims.deleteOne({ _id, dealId: holder.dealId, expiresAt: holder.expiresAt })
          continue
        }
        if (!holder && tries < 2) continue
        await this.unclaim(deal._id, inserted)
        const by = holder ? `registration ${holder.dealId}` : 'another registration'
        throw new ConflictError(
          `deal ${deal._id} cannot be approved: ${by} is approved for this customer and product ${sku} ` +
            'until its protection ends',
          'action',
        )
      }
    }
    return inserted
  }

  private async unclaim(dealId: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.cols.dealClaims.deleteMany({ _id: { $in: ids }, dealId })
  }

  /** An approval ended (expired, lost, won, cancelled): its claims go. */
  async releaseClaims(dealId: string): Promise<void> {
    await this.cols.dealClaims.deleteMany({ dealId })
  }

  /**
   * The registrations a deal conflicts with: same manufacturer and customer, a product in common,
   * and approved with protection running, or pending and registered earlier.
   */
  async conflicts(
    deal: Pick<DealDoc, '_id' | 'manufacturerId' | 'customerKey' | 'products' | 'registeredAt'>,
    now: Date,
  ): Promise<string[]> {
    const others = await this.cols.deals
      .find(
        {
          manufacturerId: deal.manufacturerId,
          customerKey: deal.customerKey,
          _id: { $ne: deal._id },
          products: { $in: deal.products },
          state: { $in: ['approved', ...PENDING_STATES] },
        },
        { projection: { _id: 1, state: 1, protectionExpiresAt: 1, registeredAt: 1 } },
      )
      .toArray()
    const mine = deal.registeredAt.getTime()
    return others
      .filter((o) =>
        o.state === 'approved'
          ? o.protectionExpiresAt === null || o.protectionExpiresAt.getTime() > now.getTime()
          : o.registeredAt.getTime() < mine || (o.registeredAt.getTime() === mine && o._id < deal._id),
      )
      .map((o) => o._id)
  }
}
