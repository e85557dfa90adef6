/**
 * Deals and leads as their Avro contracts see them (schemas/avro/deal-registration.avsc, lead.avsc):
 * the event value of a deal or lead after a step (JSON, as stored in its outbox), the check of what a
 * partner registers against the deal contract (faults named by field), and the conversion the outbox
 * relay applies before encoding (decimals, dates and timestamps into what avsc takes).
 */
import { createConverter, type Converter } from '../../connectors/source/json-avro.ts'
import { uuidv7 } from '../../schemas/headers.ts'
import { contractSchema, type ContractName } from '../../schemas/contracts.ts'
import { TOPICS } from '../../schemas/topics.ts'
import type { FieldError } from '../errors.ts'
import type { OutboxEntry } from '../types.ts'
import { CONTRACT_STATUS, EVENT_TYPE_OF, type DealAction } from './machine.ts'
import type { DealContent, DealDoc, LeadDoc } from './types.ts'

const converters = new Map<ContractName, Converter>()
function converter(name: ContractName): Converter {
  let c = converters.get(name)
  if (!c) converters.set(name, (c = createConverter(contractSchema(name))))
  return c
}

/** `/endCustomer/name` → `endCustomer.name`; `/lines/0/sku` → `lines[0].sku`. */
export function fieldOfPointer(pointer: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  return parts.reduce((out, p) => (/^\d+$/.test(p) ? `${out}[${p}]` : out === '' ? p : `${out}.${p}`), '')
}

/** The deal contract's value of a deal (JSON: timestamps in ms, decimals as strings). */
export function dealValue(d: DealDoc): Record<string, unknown> {
  return {
    dealId: d._id,
    manufacturerId: d.manufacturerId,
    partnerId: d.partnerId,
    partnerReference: d.partnerReference,
    status: CONTRACT_STATUS[d.state],
    endCustomer: d.endCustomer,
    lines: d.lines,
    amount: d.amount,
    currency: d.currency,
    expectedCloseDate: d.expectedCloseDate,
    protectionExpiresAt: d.protectionExpiresAt ? d.protectionExpiresAt.getTime() : null,
    decisionReason: d.decisionReason,
    registeredAt: d.registeredAt.getTime(),
    sequence: d.version,
    occurredAt: d.updatedAt.getTime(),
    conflict: d.state === 'conflict_review',
    leadId: d.leadId,
  }
}

/** Faults of what a partner registers, checked against the deal contract (field names as in the request). */
export function dealContentFaults(content: DealContent, manufacturerId: string, partnerId: string): FieldError[] {
  const probe: DealDoc = {
    ...content,
    _id: '00000000-0000-7000-8000-000000000000',
    manufacturerId,
    partnerId,
    state: 'submitted',
    version: 1,
    customerKey: '',
    products: [],
    conflictsWith: [],
    protectionExpiresAt: null,
    reminderSentAt: null,
    decisionReason: null,
    leadId: null,
    registeredAt: new Date(),
    updatedAt: new Date(),
  }
  return faultsOf('deal-registration', dealValue(probe))
}

/** A value's faults against a contract, each naming its field. */
function faultsOf(contract: ContractName, value: Record<string, unknown>): FieldError[] {
  return converter(contract)
    .convert(value)
    .faults.map((f) => ({ field: fieldOfPointer(f.path), message: f.message }))
}

/**
 * The outbox entry of a step of a deal or a lead: its event, keyed and stamped with the manufacturer,
 * its sequence the record's version.
 */
function stepEntry(
  r: { manufacturerId: string; version: number },
  {
    topic,
    type,
    key,
    value,
  }: { topic: string; type: string; key: Record<string, string>; value: Record<string, unknown> },
  at: Date,
): OutboxEntry {
  return {
    eventId: uuidv7(at.getTime()),
    topic,
    type,
    key: { manufacturerId: r.manufacturerId, ...key },
    value,
    sequence: r.version,
    occurredAt: at,
    publisherId: r.manufacturerId,
  }
}

/** The outbox entry of a deal's step. */
export function dealEntry(d: DealDoc, action: DealAction, at: Date): OutboxEntry {
  const type = EVENT_TYPE_OF[action]
  return stepEntry(d, { topic: TOPICS.dealRegistrations.name, type, key: { dealId: d._id }, value: dealValue(d) }, at)
}

export function leadValue(l: LeadDoc): Record<string, unknown> {
  return {
    leadId: l._id,
    manufacturerId: l.manufacturerId,
    partnerId: l.partnerId,
    status: l.state.toUpperCase(),
    company: l.company,
    contact: l.contact,
    productInterest: l.productInterest,
    acceptBy: l.acceptBy.getTime(),
    reason: l.reason,
    dealId: l.dealId,
    sequence: l.version,
    occurredAt: l.updatedAt.getTime(),
  }
}

export function leadFaults(l: LeadDoc): FieldError[] {
  return faultsOf('lead', leadValue(l))
}

export function leadEntry(l: LeadDoc, type: string, at: Date): OutboxEntry {
  return stepEntry(l, { topic: TOPICS.leads.name, type, key: { leadId: l._id }, value: leadValue(l) }, at)
}

/** For the relay (OutboxSourceOptions.convert): the stored JSON value as avsc encodes it. */
export function convertEntry(entry: OutboxEntry): Record<string, unknown> {
  const name: ContractName = entry.topic === TOPICS.leads.name ? 'lead' : 'deal-registration'
  const r = converter(name).convert(entry.value)
  if (r.faults.length > 0)
    throw new Error(`outbox entry ${entry.eventId} does not fit ${name}: ${JSON.stringify(r.faults)}`)
  return r.value as Record<string, unknown>
}
