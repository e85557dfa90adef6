/**
 * Deal registration (docs/deals.md): a partner registers a deal with a publisher that granted it,
 * the publisher reviews and decides (through the API or its CRM's inbound connector), the platform
 * expires approvals (expiry.ts). Who sees what follows control-plane/visibility.ts: a partner its own
 * registrations, a publisher those registered with it, an admin all; anything else is 404.
 */
import { randomUUID } from 'node:crypto'
import type { Filter } from 'mongodb'
import { grantAccepts } from '../entitlements.ts'
import { ForbiddenError, NotFoundError, RequestInvalidError, type FieldError } from '../errors.ts'
import { page, type Collections, type Page, type PageRequest } from '../store.ts'
import type { Principal } from '../types.ts'
import { isAdmin } from '../visibility.ts'
import { dealContentFaults } from './contract.ts'
import { customerKey, hostOf } from './customer.ts'
import { ACTOR_OF, allowedActions, DEAL_STATES, type Actor, type DealAction, type DealState } from './machine.ts'
import { DealStore, type StepPlan } from './store.ts'
import type { DealContent, DealDoc, DealTransitionDoc, StepOrigin } from './types.ts'

export interface DealProgramDefaults {
  /** Days of protection an approval gives (DEALS_PROTECTION_DAYS), unless the publisher's profile says otherwise. */
  protectionDays: number
  /** Days before the end of protection the reminder goes (DEALS_REMINDER_DAYS). */
  reminderDays: number
}

export interface DealInput extends Partial<DealContent> {
  manufacturerId?: string
  leadId?: string
}

export interface DealWithHistory {
  deal: DealDoc
  history: DealTransitionDoc[]
}

const DAY_MS = 86_400_000
/** How long a publisher's program is used without reading its profile again. */
const PROGRAM_CACHE_MS = 10_000

/** A publisher's program: its profile's `dealProgram.protectionDays` and `reminderDays`, over the defaults. */
export function programOf(
  profile: Record<string, unknown> | undefined,
  defaults: DealProgramDefaults,
): DealProgramDefaults {
  const p = (profile?.dealProgram ?? {}) as Record<string, unknown>
  const days = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 3650 ? v : d)
  return {
    protectionDays: days(p.protectionDays, defaults.protectionDays),
    reminderDays: days(p.reminderDays, defaults.reminderDays),
  }
}

export class Deals {
  readonly store: DealStore

  constructor(
    readonly cols: Collections,
    readonly defaults: DealProgramDefaults,
    written: () => void,
  ) {
    this.store = new DealStore(cols, written)
  }

  private readonly programs = new Map<string, { at: number; program: DealProgramDefaults }>()

  /** A publisher's program (its profile's dealProgram over the defaults), read at most every 10 s per process. */
  async program(publisherId: string): Promise<DealProgramDefaults> {
    const cached = this.programs.get(publisherId)
    if (cached && Date.now() - cached.at < PROGRAM_CACHE_MS) return cached.program
    const org = await this.cols.organizations.findOne({ _id: publisherId }, { projection: { profile: 1 } })
    const program = programOf(org?.profile, this.defaults)
    if (this.programs.size > 10_000) this.programs.clear()
    this.programs.set(publisherId, { at: Date.now(), program })
    return program
  }

  /** A publisher's profile changed: its program is read again (other processes within PROGRAM_CACHE_MS). */
  forgetProgram(publisherId: string): void {
    this.programs.delete(publisherId)
  }

  /** The filter of the deals a caller sees. */
  scope(p: Principal): Filter<DealDoc> {
    if (isAdmin(p)) return {}
    return p.scope === 'publisher' ? { manufacturerId: p.organizationId! } : { partnerId: p.organizationId! }
  }

  async list(
    p: Principal,
    q: { state?: string | undefined; partnerId?: string | undefined; manufacturerId?: string | undefined },
    req: PageRequest,
  ): Promise<Page<DealDoc>> {
    const filter: Filter<DealDoc> = { ...this.scope(p) }
    const parts: Filter<DealDoc>[] = [filter]
    if (q.state !== undefined) parts.push({ state: q.state as DealState })
    if (q.partnerId !== undefined) parts.push({ partnerId: q.partnerId })
    if (q.manufacturerId !== undefined) parts.push({ manufacturerId: q.manufacturerId })
    return page(this.cols.deals, parts.length === 1 ? filter : { $and: parts }, req)
  }

  async get(p: Principal, id: string): Promise<DealWithHistory> {
    const visible = await this.cols.deals.findOne({ $and: [{ _id: id }, this.scope(p)] }, { projection: { _id: 1 } })
    if (!visible) throw new NotFoundError('deal', { dealId: id })
    const deal = await this.store.load(id)
    if (!deal) throw new NotFoundError('deal', { dealId: id })
    return { deal, history: await this.store.history(id) }
  }

  /** The content a partner sends, checked (422 naming each field) and completed with what the platform derives. */
  private checkContent(
    c: Partial<DealContent>,
    manufacturerId: string,
    partnerId: string,
  ): DealContent & { customerKey: string; products: string[] } {
    const errors: FieldError[] = []
    const content: DealContent = {
      partnerReference: c.partnerReference ?? null,
      endCustomer: {
        name: c.endCustomer?.name as string,
        domain: c.endCustomer?.domain ?? null,
        country: (c.endCustomer?.country ?? '') as string,
        industry: c.endCustomer?.industry ?? null,
      },
      lines: (c.lines ?? []).map((l) => ({ sku: l.sku, quantity: l.quantity, unitPrice: l.unitPrice ?? null })),
      amount: c.amount as string,
      currency: c.currency as string,
      expectedCloseDate: c.expectedCloseDate as string,
    }
    errors.push(...dealContentFaults(content, manufacturerId, partnerId))
    if (content.endCustomer.domain !== null && hostOf(content.endCustomer.domain) === undefined) {
      errors.push({ field: 'endCustomer.domain', message: 'is not a domain name (e.g. example.com)' })
    }
    if (content.lines.length === 0) errors.push({ field: 'lines', message: 'must name at least one product' })
    if (typeof content.endCustomer.country === 'string' && !/^[A-Z]{2}$/.test(content.endCustomer.country)) {
      errors.push({ field: 'endCustomer.country', message: 'must be an ISO 3166-1 alpha-2 code (e.g. DE)' })
    }
    if (errors.length > 0) throw new RequestInvalidError(errors)
    return {
      ...content,
      customerKey: customerKey(content.endCustomer),
      products: [...new Set(content.lines.map((l) => l.sku))],
    }
  }

  /** A partner (or an admin naming `partnerId`) registers a deal with a publisher that granted it. */
  async register(p: Principal, input: DealInput & { partnerId?: string }, origin?: StepOrigin): Promise<DealDoc> {
    if (p.scope === 'publisher') throw new ForbiddenError('partners register deals; a publisher decides on them')
    const partnerId = isAdmin(p) ? input.partnerId : p.organizationId!
    if (!partnerId) throw new RequestInvalidError([{ field: 'partnerId', message: 'is required with an admin key' }])
    const manufacturerId = input.manufacturerId
    if (!manufacturerId)
      throw new RequestInvalidError([
        { field: 'manufacturerId', message: 'is required: the publisher the deal is registered with' },
      ])
    const grants = await this.cols.grants.find({ publisherId: manufacturerId, partnerId }).toArray()
    if (!grants.some((g) => grantAccepts(g).length > 0)) {
      throw new RequestInvalidError([
        {
          field: 'manufacturerId',
          message:
            `no accepted grant of publisher ${manufacturerId} to partner ${partnerId}: ` +
            'a partner registers deals only with its publishers',
        },
      ])
    }
    const content = this.checkContent(input, manufacturerId, partnerId)
    const now = new Date()
    const draft: DealDoc = {
      ...content,
      _id: randomUUID(),
      manufacturerId,
      partnerId,
      state: 'submitted',
      version: 1,
      conflictsWith: [],
      protectionExpiresAt: null,
      reminderSentAt: null,
      decisionReason: null,
      leadId: input.leadId ?? null,
      registeredAt: now,
      updatedAt: now,
    }
    draft.conflictsWith = await this.store.conflicts(draft, now)
    if (draft.conflictsWith.length > 0) draft.state = 'conflict_review'
    return this.store.create(draft, origin ?? this.origin(p, 'submit'))
  }

  /** Who takes a step through the API (an admin acts for the side the action belongs to). */
  origin(p: Principal, action: DealAction): StepOrigin {
    return { actor: ACTOR_OF[action], organizationId: p.organizationId, via: 'api', ref: p.keyId }
  }

  private actorOf(p: Principal): Actor | undefined {
    return isAdmin(p) ? undefined : p.scope === 'publisher' ? 'publisher' : 'partner'
  }

  /**
   * An action of the partner (resubmit with changes, cancel) or the publisher (review, approve,
   * reject, return, won, lost) on a visible deal. 409 names the state and the actions allowed.
   */
  async act(
    p: Principal,
    id: string,
    action: DealAction,
    body: { reason?: string; changes?: Partial<DealContent> } = {},
  ): Promise<DealDoc> {
    const deal = await this.cols.deals.findOne({ $and: [{ _id: id }, this.scope(p)] }, { projection: { state: 1 } })
    if (!deal) throw new NotFoundError('deal', { dealId: id })
    const actor = this.actorOf(p)
    if (ACTOR_OF[action] === 'platform') {
      throw new RequestInvalidError([
        {
          field: 'action',
          message: `${action} is the platform's; allowed: ${allowedActions(deal.state, actor).join(', ') || 'none'}`,
        },
      ])
    }
    return (await this.decide(id, action, this.origin(p, action), actor, body))!
  }

  /** A step by an actor (the API's, or a CRM's through its inbound connector), with the changes each action brings. */
  async decide(
    id: string,
    action: DealAction,
    origin: StepOrigin,
    actor: Actor | undefined,
    body: { reason?: string; changes?: Partial<DealContent>; manufacturerId?: string } = {},
  ): Promise<DealDoc | null> {
    const reason = body.reason ?? null
    return this.store.step(id, action, origin, {
      reason,
      // a step on behalf of one publisher (its CRM) touches only that publisher's deals (null: not found)
      ...(body.manufacturerId !== undefined
        ? { precondition: (d: DealDoc) => d.manufacturerId === body.manufacturerId }
        : {}),
      ...(actor !== undefined ? { actor } : {}),
      plan: async (deal, to, now): Promise<StepPlan> => {
        if (action === 'resubmit') {
          const content = this.checkContent(
            { ...deal, ...body.changes, endCustomer: { ...deal.endCustomer, ...body.changes?.endCustomer } },
            deal.manufacturerId,
            deal.partnerId,
          )
          const conflictsWith = await this.store.conflicts({ ...deal, ...content }, now)
          return {
            to: conflictsWith.length > 0 ? 'conflict_review' : 'submitted',
            set: { ...content, conflictsWith, decisionReason: null },
          }
        }
        if (to === 'approved' && action === 'approve') {
          const program = await this.program(deal.manufacturerId)
          const protectionExpiresAt = new Date(now.getTime() + program.protectionDays * DAY_MS)
          return { set: { protectionExpiresAt, reminderSentAt: null, decisionReason: reason } }
        }
        if (action === 'remind') return { set: { reminderSentAt: now } }
        if (['reject', 'return', 'lost', 'won', 'cancel', 'expire'].includes(action))
          return { set: { decisionReason: reason } }
        return {}
      },
    })
  }
}

export const DEAL_STATE_LIST = DEAL_STATES
