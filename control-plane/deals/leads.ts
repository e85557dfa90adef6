/**
 * Lead sharing (docs/deals.md): a publisher assigns a lead to a partner it granted, with a deadline
 * (`acceptBy`, default 48 h); the partner accepts or declines; a lead not answered in time expires
 * back to the publisher (expiry.ts), who may reassign it (also a declined one); an accepted lead is
 * converted into a deal registration linked to it. Every step is an event on leads.assignments,
 * which reaches only the partner the lead is assigned to and the publisher (schemas/topics.ts
 * `audience`). Steps race like a deal's: the insert of `<leadId>:<version>` decides.
 */
import { grantAccepts } from '../entitlements.ts'
import { ConflictError, ForbiddenError, NotFoundError, RequestInvalidError } from '../errors.ts'
import { isDuplicateKey } from '../../common/store-errors.ts'
import { newId, page, type Collections, type Page, type PageRequest } from '../store.ts'
import type { Principal } from '../types.ts'
import { isAdmin } from '../visibility.ts'
import { leadEntry, leadFaults } from './contract.ts'
import type { DealInput, Deals } from './service.ts'
import { pendingEventId, type DealDoc, type LeadDoc, type LeadState, type StepOrigin } from './types.ts'

export type LeadAction = 'accept' | 'decline' | 'expire' | 'reassign' | 'convert'

const TABLE: Record<LeadState, Partial<Record<LeadAction, LeadState>>> = {
  assigned: { accept: 'accepted', decline: 'declined', expire: 'expired' },
  accepted: { convert: 'converted' },
  declined: { reassign: 'assigned' },
  expired: { reassign: 'assigned' },
  converted: {},
}
const ACTOR: Record<LeadAction, 'partner' | 'publisher' | 'platform'> = {
  accept: 'partner',
  decline: 'partner',
  convert: 'partner',
  reassign: 'publisher',
  expire: 'platform',
}
const EVENT: Record<LeadAction, string> = {
  accept: 'lead.accepted',
  decline: 'lead.declined',
  expire: 'lead.expired',
  reassign: 'lead.assigned',
  convert: 'lead.converted',
}
const HOUR_MS = 3_600_000
const allowedOf = (state: LeadState): string => Object.keys(TABLE[state]).join(', ') || 'none (a final state)'

export interface LeadInput {
  partnerId: string
  company: { name: string; domain?: string | null; country: string }
  contact?: { name: string; email?: string | null; phone?: string | null } | null
  productInterest: string[]
  acceptBy?: string
}

export class Leads {
  constructor(
    private readonly cols: Collections,
    private readonly deals: Deals,
    private readonly written: () => void,
    private readonly defaultAcceptHours = 48,
  ) {}

  /** The step's event for the relay (deals' and leads' events wait in one collection). */
  private async pend(lead: LeadDoc, type: string, at: Date): Promise<void> {
    await this.cols.dealOutbox.insertOne({
      _id: pendingEventId(lead._id, lead.version),
      outbox: [leadEntry(lead, type, at)],
      outboxAt: at,
    })
  }

  private scope(p: Principal) {
    if (isAdmin(p)) return {}
    return p.scope === 'publisher' ? { manufacturerId: p.organizationId! } : { partnerId: p.organizationId! }
  }

  async list(p: Principal, q: { state?: string | undefined }, req: PageRequest): Promise<Page<LeadDoc>> {
    const filter = { ...this.scope(p), ...(q.state !== undefined ? { state: q.state as LeadState } : {}) }
    return page(this.cols.leads, filter, req)
  }

  async get(p: Principal, id: string): Promise<LeadDoc> {
    const lead = await this.cols.leads.findOne({ $and: [{ _id: id }, this.scope(p)] })
    if (!lead) throw new NotFoundError('lead', { leadId: id })
    return lead
  }

  private async requireGrant(publisherId: string, partnerId: string): Promise<void> {
    const grants = await this.cols.grants.find({ publisherId, partnerId }).toArray()
    if (!grants.some((g) => grantAccepts(g).length > 0)) {
      throw new RequestInvalidError([
        { field: 'partnerId', message: `partner ${partnerId} has no accepted grant of publisher ${publisherId}` },
      ])
    }
  }

  private acceptBy(at: string | undefined, now: Date): Date {
    if (at === undefined) return new Date(now.getTime() + this.defaultAcceptHours * HOUR_MS)
    const d = new Date(at)
    if (Number.isNaN(d.getTime()) || d.getTime() <= now.getTime())
      throw new RequestInvalidError([{ field: 'acceptBy', message: 'must be a date-time in the future' }])
    return d
  }

  /** A publisher (or an admin naming `manufacturerId`) assigns a lead to a partner. */
  async create(p: Principal, input: LeadInput & { manufacturerId?: string }): Promise<LeadDoc> {
    if (p.scope === 'partner') throw new ForbiddenError('a publisher shares leads with its partners')
    const manufacturerId = isAdmin(p) ? input.manufacturerId : p.organizationId!
    if (!manufacturerId)
      throw new RequestInvalidError([{ field: 'manufacturerId', message: 'is required with an admin key' }])
    await this.requireGrant(manufacturerId, input.partnerId)
    const now = new Date()
    const origin: StepOrigin = { actor: 'publisher', organizationId: p.organizationId, via: 'api', ref: p.keyId }
    const lead: LeadDoc = {
      _id: newId('lead'),
      manufacturerId,
      partnerId: input.partnerId,
      state: 'assigned',
      version: 1,
      company: { name: input.company.name, domain: input.company.domain ?? null, country: input.company.country },
      contact: input.contact
        ? { name: input.contact.name, email: input.contact.email ?? null, phone: input.contact.phone ?? null }
        : null,
      productInterest: input.productInterest,
      acceptBy: this.acceptBy(input.acceptBy, now),
      reason: null,
      dealId: null,
      createdAt: now,
      updatedAt: now,
      history: [
        { version: 1, from: null, to: 'assigned', partnerId: input.partnerId, by: origin, at: now, reason: null },
      ],
    }
    const faults = leadFaults(lead)
    if (faults.length > 0) throw new RequestInvalidError(faults)
    await this.cols.leadTransitions.insertOne({ _id: `${lead._id}:1`, leadId: lead._id, version: 1, at: now })
    await this.pend(lead, 'lead.assigned', now)
    await this.cols.leads.insertOne(lead)
    this.written()
    return lead
  }

  /** One step; 409 naming the state and what is allowed when the action does not fit. */
  async step(
    id: string,
    action: LeadAction,
    origin: StepOrigin,
    change: (lead: LeadDoc, now: Date) => Partial<LeadDoc> = () => ({}),
    precondition?: (lead: LeadDoc) => boolean,
  ): Promise<LeadDoc | null> {
    const lead = await this.cols.leads.findOne({ _id: id })
    if (!lead) throw new NotFoundError('lead', { leadId: id })
    if (precondition && !precondition(lead)) return null
    const to = TABLE[lead.state][action]
    if (to === undefined || (origin.actor !== ACTOR[action] && origin.via !== 'api')) {
      const allowed = Object.keys(TABLE[lead.state]).join(', ') || 'none (a final state)'
      throw new ConflictError(
        `lead ${id} is ${lead.state}: ${action} is not allowed; allowed actions: ${allowed}`,
        'action',
      )
    }
    const now = new Date()
    const version = lead.version + 1
    const after: LeadDoc = { ...lead, ...change(lead, now), state: to, version, updatedAt: now }
    try {
      await this.cols.leadTransitions.insertOne({ _id: `${id}:${version}`, leadId: id, version, at: now })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      const current = await this.cols.leads.findOne({ _id: id })
      const allowed = Object.keys(TABLE[current?.state ?? lead.state]).join(', ') || 'none'
      throw new ConflictError(
        `lead ${id} changed meanwhile (now ${current?.state ?? 'unknown'}); allowed actions: ${allowed}`,
        'action',
      )
    }
    after.history = [
      ...lead.history,
      { version, from: lead.state, to, partnerId: after.partnerId, by: origin, at: now, reason: after.reason },
    ]
    await this.pend(after, EVENT[action], now)
    const { _id, ...fields } = after
    await this.cols.leads.updateOne({ _id, version: lead.version }, { $set: fields })
    this.written()
    return after
  }

  private origin(p: Principal, action: LeadAction): StepOrigin {
    return {
      actor: isAdmin(p) ? ACTOR[action] : (p.scope as 'partner' | 'publisher'),
      organizationId: p.organizationId,
      via: 'api',
      ref: p.keyId,
    }
  }

  /** accept, decline (reason), reassign (partnerId, acceptBy) by the side each belongs to. */
  async act(
    p: Principal,
    id: string,
    action: 'accept' | 'decline' | 'reassign',
    body: { reason?: string; partnerId?: string; acceptBy?: string } = {},
  ): Promise<LeadDoc> {
    const lead = await this.get(p, id)
    if (!isAdmin(p) && p.scope !== ACTOR[action]) {
      throw new ConflictError(
        `lead ${id} is ${lead.state}: ${action} is the ${ACTOR[action]}'s; allowed actions: ${allowedOf(lead.state)}`,
        'action',
      )
    }
    if (action === 'reassign') {
      if (!body.partnerId)
        throw new RequestInvalidError([
          { field: 'partnerId', message: 'is required: the partner to assign the lead to' },
        ])
      await this.requireGrant(lead.manufacturerId, body.partnerId)
    }
    const acceptBy = action === 'reassign' ? this.acceptBy(body.acceptBy, new Date()) : undefined
    const next = await this.step(id, action, this.origin(p, action), () => ({
      reason: body.reason ?? null,
      ...(action === 'reassign' ? { partnerId: body.partnerId!, acceptBy: acceptBy! } : {}),
    }))
    return next!
  }

  /** The partner turns its accepted lead into a deal registration (linked both ways). */
  async convert(p: Principal, id: string, input: DealInput): Promise<{ lead: LeadDoc; deal: DealDoc }> {
    const lead = await this.get(p, id)
    if (lead.state !== 'accepted') {
      throw new ConflictError(
        `lead ${id} is ${lead.state}: convert is not allowed; allowed actions: ${allowedOf(lead.state)}`,
        'action',
      )
    }
    const deal = await this.deals.register(p, {
      endCustomer: {
        name: lead.company.name,
        domain: lead.company.domain,
        country: lead.company.country,
        industry: null,
      },
      ...input,
      manufacturerId: lead.manufacturerId,
      partnerId: lead.partnerId,
      leadId: id,
    } as DealInput & { partnerId: string })
    const converted = await this.step(id, 'convert', this.origin(p, 'convert'), () => ({ dealId: deal._id }))
    return { lead: converted!, deal }
  }

  /** Leads past their deadline go back to the publisher (idempotent; safe with several workers). */
  async expireDue(now: Date): Promise<number> {
    const due = await this.cols.leads
      .find({ state: 'assigned', acceptBy: { $lte: now } }, { projection: { _id: 1 } })
      .limit(200)
      .toArray()
    let n = 0
    for (const { _id } of due) {
      try {
        const done = await this.step(
          _id,
          'expire',
          { actor: 'platform', organizationId: null, via: 'platform', ref: 'expiry' },
          () => ({ reason: 'not answered by acceptBy' }),
          (l) => l.state === 'assigned' && l.acceptBy <= now,
        )
        if (done) n++
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err
      }
    }
    return n
  }
}
