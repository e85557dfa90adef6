/**
 * The documents of deal registration and lead sharing (docs/deals.md). FerretDB v1 has no
 * multi-document transactions and does not isolate concurrent updates of one document, so:
 *
 * - every step of a deal (or lead) is first an insert into its transitions, under the unique `_id`
 *   `<id>:<version>`: of two concurrent steps from one version exactly one insert wins, the other is
 *   told the new state (409 when its action is no longer allowed there);
 * - the step's event is then put in `deal_outbox` for the relay, and the deal document moved from that
 *   version to the next by the step's one winner (a step found in the transitions but not yet in the
 *   document, e.g. after a crash, is rolled forward by the next step, with the same content and event);
 * - at most one approved, unexpired registration per (manufacturer, customer, product) is a claim
 *   document per triple, inserted under a unique `_id` on approval and removed when the approval ends.
 */
import type { OutboxEntry } from '../types.ts'
import type { Actor, DealAction, DealState } from './machine.ts'

export interface EndCustomer {
  name: string
  domain: string | null
  country: string
  industry: string | null
}

export interface DealLine {
  sku: string
  quantity: number
  /** Decimal as a string (the contract's JSON form), or null when not disclosed. */
  unitPrice: string | null
}

/** What the partner registers (and may change when the registration was returned). */
export interface DealContent {
  partnerReference: string | null
  endCustomer: EndCustomer
  lines: DealLine[]
  amount: string
  currency: string
  /** YYYY-MM-DD */
  expectedCloseDate: string
}

export interface DealDoc extends DealContent {
  /** The deal id (a UUID, as the contract's key wants it). */
  _id: string
  manufacturerId: string
  partnerId: string
  state: DealState
  /** Strictly increasing; the version of the last step applied here (its transition's `version`). */
  version: number
  /** The end customer as the conflict check compares it (customer.ts). */
  customerKey: string
  /** The SKUs of the lines, deduplicated (the conflict check's product set). */
  products: string[]
  /** Registrations this one conflicted with when last (re)submitted: the publisher sees them, the partner never. */
  conflictsWith: string[]
  protectionExpiresAt: Date | null
  /** When the expiry reminder was sent (once per approval). */
  reminderSentAt: Date | null
  decisionReason: string | null
  leadId: string | null
  registeredAt: Date
  updatedAt: Date
}

/** Who took a step: an organization's key, its CRM through an inbound connector, or the platform. */
export interface StepOrigin {
  actor: Actor
  organizationId: string | null
  /** The API key (api), the inbound connector (inbound) or the job (platform). */
  via: 'api' | 'inbound' | 'platform'
  ref: string
}

/** One step of a deal: the history GET /v1/deals/{id} shows, and the lock two concurrent steps race for. */
export interface DealTransitionDoc {
  /** `<dealId>:<version>` */
  _id: string
  dealId: string
  version: number
  from: DealState | null
  to: DealState
  action: DealAction
  by: StepOrigin
  reason: string | null
  at: Date
  /** The fields of the deal after the step (what a roll-forward sets). */
  set: Partial<Omit<DealDoc, '_id' | 'version'>>
  event: OutboxEntry
}

/** The one approved, unexpired registration of (manufacturer, customer, product). */
export interface DealClaimDoc {
  /** `<manufacturerId>|<customerKey>|<sku>` */
  _id: string
  dealId: string
  createdAt: Date
  /** The approval's protectionExpiresAt: an expired claim may be taken over (as read) before the job ran. */
  expiresAt: Date
}

export const LEAD_STATES = ['assigned', 'accepted', 'declined', 'expired', 'converted'] as const
export type LeadState = (typeof LEAD_STATES)[number]

export interface LeadDoc {
  _id: string
  manufacturerId: string
  /** The partner it is (or was last) assigned to. */
  partnerId: string
  state: LeadState
  version: number
  company: { name: string; domain: string | null; country: string }
  contact: { name: string; email: string | null; phone: string | null } | null
  productInterest: string[]
  acceptBy: Date
  reason: string | null
  dealId: string | null
  createdAt: Date
  updatedAt: Date
  history: Array<{
    version: number
    from: LeadState | null
    to: LeadState
    partnerId: string
    by: StepOrigin
    at: Date
    reason: string | null
  }>
}

/**
 * An event of a deal's or a lead's step waiting for the relay (producers/outbox/deals.ts), `_id`
 * `<id>:<version, 9 digits>`: inserted with the step, deleted once the broker acknowledged it, so the
 * relay reads only what is pending (shaped as the relay reads outboxes: one entry).
 */
export interface PendingEventDoc {
  _id: string
  outbox: [OutboxEntry]
  outboxAt: Date
}

/** The pending event's `_id`: ordered by version within a deal or lead. */
export const pendingEventId = (id: string, version: number): string => `${id}:${String(version).padStart(9, '0')}`

/** A lead's steps race like a deal's: the insert of `<leadId>:<version>` decides. */
export interface LeadTransitionDoc {
  _id: string
  leadId: string
  version: number
  at: Date
}

/** A publisher's inbound connector: its CRM's decisions on deals (inbound.ts). */
export interface InboundConnectorDoc {
  _id: string
  publisherId: string
  name: string
  /** The `whsec_` signing secret, sealed. */
  secret: string
  /**
   * Secrets rotated out (sealed), each still accepted until its expiresAt: the overlap a rotation asks for, so
   * that the CRM can switch to the new secret without a call refused in between. Absent before a rotation.
   */
  previousSecrets?: Array<{ sealed: string; expiresAt: Date }>
  mapping: string
  toleranceSeconds: number
  createdAt: Date
  updatedAt: Date
}
