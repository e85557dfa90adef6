/**
 * Entitlements in the data plane: for one decoded record and one subscription, given the partner's
 * current grants, deliver a projected value or drop the record. The control plane refuses a
 * subscription that asks more than its grants (control-plane/entitlements.ts); this is the check that
 * holds whatever is stored, on every path to a sink (live, catch-up, replay, dead-letter retry,
 * snapshot), at delivery time, so a grant revoked after a record was queued still stops it.
 *
 * - The PUBLISHER of a record is the organization the platform stamped on it: the `ce_publisherid`
 *   header, which ingestion sets from the authenticated publisher and every source from its owner.
 *   The payload only claims: a value or key whose `manufacturerId` names another organization ties the
 *   record to none, and so does a record without the header (docs/tenancy.md).
 * - The grants that apply are the ACCEPTED ones of that publisher to the subscription's partner with
 *   an entitlement for the record's event type (an offer the partner has not accepted covers nothing).
 *   None: dropped (a record no grant covers never leaves).
 * - Row filter: the grant's filter AND the subscription's, `"$partnerId"` standing for the receiving
 *   partner. A path through an array holds when every element holds (nothing outside the grant leaks);
 *   a missing field fails the filter.
 * - Projection: the grant's fields intersected with the subscription's (absent: every field); a path
 *   through an array projects each element.
 * - Audience (schemas/topics.ts `audience`): a deal registration or a lead reaches only the partner its
 *   value's `partnerId` names, whatever the grants say, so one partner never receives another's deals.
 * - A publisher's own subscriptions (its CRM behind a REST sink, docs/deals.md) receive the records it
 *   published, and only those: no grant is needed to read one's own data.
 * - The platform's reports about a partner's own subscriptions (schemas/topics.ts `noGrant`: freshness
 *   breaches, docs/freshness.md) reach that partner (the audience) without a grant.
 */
import { decodeKey } from '../../control-plane/stored-keys.ts'
import { fieldAllowed, grantAcceptsType } from '../../control-plane/entitlements.ts'
import type { Entitlement, GrantDoc, RowFilter } from '../../control-plane/types.ts'
import { HEADER } from '../../schemas/headers.ts'
import { ALL_TOPICS } from '../../schemas/topics.ts'
import type { SinkRecord } from './types.ts'

export const PARTNER_ID_PLACEHOLDER = '$partnerId'

/** What the data plane needs of a subscription. */
export interface EntitledSubscription {
  partnerId: string
  filter?: RowFilter | undefined
  fields?: string[] | undefined
}

export type EntitlementDecision =
  | { deliver: true; value: unknown; projected: boolean; publisherId: string; fields?: string[] }
  | { deliver: false; reason: string }

/** The `"manufacturerId":"..."` of a key's JSON text (keys of contract version 2 begin with it), if any. */
const KEY_MANUFACTURER = /^\{"manufacturerId":("(?:[^"\\]|\\.)*")/

/** The manufacturer a record's key names (undefined: none, e.g. a version-1 key, whose field reads as ''). */
export function keyManufacturer(key: string | null): string | undefined {
  if (key === null) return undefined
  const m = KEY_MANUFACTURER.exec(key)
  if (!m) return undefined
  const id = JSON.parse(m[1]!) as string
  return id === '' ? undefined : id
}

/** The organization that published a record (null: no stamp, or the payload or key names another). */
export function publisherOf(record: Pick<SinkRecord, 'headers' | 'value'> & { key?: string | null }): string | null {
  const header = record.headers[HEADER.publisherId]
  if (header === undefined || header === '') return null
  const v = record.value
  if (
    v !== null &&
    typeof v === 'object' &&
    'manufacturerId' in v &&
    (v as Record<string, unknown>).manufacturerId !== header
  )
    return null
  const k = keyManufacturer(record.key ?? null)
  if (k !== undefined && k !== header) return null
  return header
}

/** Is a grant in force: accepted by its partner (offers cover nothing), for this event type? */
export const grantCovers = grantAcceptsType

/** The values at a dot path; arrays on the way contribute each element. Undefined: the path is missing. */
export function valuesAt(value: unknown, path: string): unknown[] | undefined {
  let current: unknown[] = [value]
  for (const name of path.split('.')) {
    const next: unknown[] = []
    for (const c of current) {
      const items = Array.isArray(c) ? c : [c]
      for (const item of items) {
        if (item === null || typeof item !== 'object' || Buffer.isBuffer(item) || !(name in (item as object)))
          return undefined
        next.push((item as Record<string, unknown>)[name])
      }
    }
    current = next
  }
  return current.flatMap((c) => (Array.isArray(c) ? c : [c]))
}

export function scalar(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v)
  if (v instanceof Date) return v.getTime()
  return v
}

/** Does the value hold every condition of the filter (`$partnerId` = partnerId)? */
export function matchesFilter(
  value: unknown,
  filter: RowFilter | undefined,
  partnerId: string,
): { ok: true } | { ok: false; field: string } {
  for (const [field, cond] of Object.entries(filter ?? {})) {
    const allowed = cond.in.map((a) => (a === PARTNER_ID_PLACEHOLDER ? partnerId : a))
    const path = decodeKey(field) // stored keys are encoded (control-plane/stored-keys.ts)
    const found = valuesAt(value, path)
    if (found === undefined || found.length === 0) return { ok: false, field: path }
    if (!found.every((f) => allowed.some((a) => a === scalar(f)))) return { ok: false, field: path }
  }
  return { ok: true }
}

/** Field paths both lists allow (undefined: every field). */
export function intersectFields(
  a: readonly string[] | undefined,
  b: readonly string[] | undefined,
): string[] | undefined {
  if (a === undefined) return b ? [...b] : undefined
  if (b === undefined) return [...a]
  const out = new Set<string>()
  for (const p of a) if (fieldAllowed(p, b)) out.add(p)
  for (const p of b) if (fieldAllowed(p, a)) out.add(p)
  return [...out]
}

/** Fields both of two grants' entitlements allow together (undefined: every field). */
function unionFields(a: string[] | undefined, b: readonly string[] | undefined): string[] | undefined {
  if (a === undefined || b === undefined) return undefined
  return [...new Set([...a, ...b])]
}

/** Field paths as a tree: `whole` where a listed path ends (everything below it is kept). */
export interface Trie {
  whole: boolean
  children: Map<string, Trie>
}

export function trieOf(paths: readonly string[]): Trie {
  const root: Trie = { whole: false, children: new Map() }
  for (const p of paths) {
    let node = root
    for (const name of p.split('.')) {
      let child = node.children.get(name)
      if (!child) node.children.set(name, (child = { whole: false, children: new Map() }))
      node = child
    }
    node.whole = true
  }
  return root
}

function projectNode(value: unknown, node: Trie): unknown {
  if (node.whole) return value
  if (Array.isArray(value)) return value.map((v) => projectNode(v, node))
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return undefined
  const out: Record<string, unknown> = {}
  for (const [name, child] of node.children) {
    if (!(name in (value as object))) continue
    const v = projectNode((value as Record<string, unknown>)[name], child)
    if (v !== undefined) out[name] = v
  }
  return out
}

/** A copy of the value holding only the listed paths (the value itself when `paths` is undefined). */
export function project(value: unknown, paths: readonly string[] | undefined): unknown {
  if (paths === undefined) return value
  const v = projectNode(value, trieOf(paths))
  return v === undefined ? {} : v
}

/** The entitlements of the publisher's accepted grants to the partner for this event type. */
export function entitlementsFor(
  grants: readonly GrantDoc[],
  partnerId: string,
  publisherId: string,
  eventType: string,
): Entitlement[] {
  return grants
    .filter((g) => g.partnerId === partnerId && g.publisherId === publisherId && grantCovers(g, eventType))
    .flatMap((g) => g.entitlements.filter((e) => e.eventType === eventType))
}

/** The value field naming the only partner a record of this event type may reach (schemas/topics.ts `audience`). */
const AUDIENCE = new Map<string, string>(
  ALL_TOPICS.flatMap((t) => (t.audience ? t.eventTypes.map((e) => [e, t.audience!] as [string, string]) : [])),
)

/** Is the record addressed to another partner than the subscriber (an audience topic's `partnerId`)? */
function outsideAudience(value: unknown, eventType: string, subscriber: string): string | undefined {
  const field = AUDIENCE.get(eventType)
  if (field === undefined) return undefined
  // a tombstone names nobody: its key (a deal id) is no partner's to see, so it reaches only the publisher
  if (value === null || typeof value !== 'object') return `addressed to no partner (no ${field})`
  const addressee = (value as Record<string, unknown>)[field]
  return addressee === subscriber ? undefined : `addressed to another partner (${field})`
}

/** Event types every partner may receive without a grant: those addressed to it (schemas/topics.ts `noGrant`). */
const NO_GRANT = new Set(ALL_TOPICS.flatMap((t) => (t.noGrant ? t.eventTypes : [])))

/** A record the subscriber may read without a grant, under the subscription's own filter and fields only. */
function own(value: unknown, sub: EntitledSubscription, publisher: string): EntitlementDecision {
  if (value === null) return { deliver: true, value: null, projected: false, publisherId: publisher }
  const f = matchesFilter(value, sub.filter, sub.partnerId)
  if (!f.ok) return { deliver: false, reason: `outside the subscription's filter (${f.field})` }
  const paths = sub.fields ? [...sub.fields] : undefined
  return {
    deliver: true,
    value: project(value, paths),
    projected: paths !== undefined,
    publisherId: publisher,
    ...(paths ? { fields: paths } : {}),
  }
}

/** Deliver (with the projected value) or drop one record for one subscription. */
export function decide(
  record: Pick<SinkRecord, 'headers' | 'value' | 'eventType'> & { key?: string | null },
  sub: EntitledSubscription,
  grants: readonly GrantDoc[],
): EntitlementDecision {
  const publisher = publisherOf(record)
  if (publisher === null)
    return {
      deliver: false,
      reason:
        'the record carries no ce_publisherid stamp, or its manufacturerId (value or key) names another organization',
    }
  // The publisher's own subscription: its own records, under its own filter and fields only.
  if (publisher === sub.partnerId) return own(record.value, sub, publisher)
  const outside = outsideAudience(record.value, record.eventType, sub.partnerId)
  if (outside !== undefined) return { deliver: false, reason: outside }
  // the platform's report about the partner's own subscription: its own, under its own filter and fields
  if (NO_GRANT.has(record.eventType)) return own(record.value, sub, publisher)
  const ents = entitlementsFor(grants, sub.partnerId, publisher, record.eventType)
  if (ents.length === 0)
    return { deliver: false, reason: `no accepted grant of publisher ${publisher} covers ${record.eventType}` }
  // A tombstone (a deleted key, publisher named by its header) carries no row to filter or project:
  // the partner learns only that a key of a granted event type is gone (a sink holding that key drops it).
  if (record.value === null) return { deliver: true, value: null, projected: false, publisherId: publisher }
  const sf = matchesFilter(record.value, sub.filter, sub.partnerId)
  if (!sf.ok) return { deliver: false, reason: `outside the subscription's filter (${sf.field})` }
  let fields: string[] | undefined
  let passed = 0
  let failed = ''
  for (const e of ents) {
    const gf = matchesFilter(record.value, e.filter, sub.partnerId)
    if (!gf.ok) {
      failed = gf.field
      continue
    }
    fields = passed === 0 ? (e.fields ? [...e.fields] : undefined) : unionFields(fields, e.fields)
    passed++
  }
  if (passed === 0) return { deliver: false, reason: `outside the grant's filter (${failed})` }
  const paths = intersectFields(fields, sub.fields)
  return {
    deliver: true,
    value: project(record.value, paths),
    projected: paths !== undefined,
    publisherId: publisher,
    ...(paths !== undefined ? { fields: paths } : {}),
  }
}
