/**
 * Is what a subscription asks for within its partner's grants? A subscription may narrow a grant
 * (fewer event types, a stricter filter, fewer fields) but never widen it. What it leaves out it
 * inherits from the grant; the data plane applies grant AND subscription to every record anyway.
 *
 * When several publishers grant the same event type, the request must fit at least one of them.
 */
import { ALL_TOPICS } from '../schemas/topics.ts'
import type { FieldError } from './errors.ts'
import type { Entitlement, GrantDoc, RowFilter } from './types.ts'

export interface EntitlementRequest {
  eventTypes: string[]
  filter?: RowFilter | undefined
  fields?: string[] | undefined
}

const show = (vs: unknown[]) => vs.map((v) => JSON.stringify(v)).join(', ')

/**
 * The event types a grant is in force for: those its partner accepted (an offer: none; a grant
 * written before consent existed: all of its types).
 */
export function grantAccepts(g: Pick<GrantDoc, 'status' | 'eventTypes' | 'acceptedEventTypes'>): string[] {
  return g.eventTypes.filter((t) => grantAcceptsType(g, t))
}

/** Is the grant in force for this event type? Allocates nothing: the sink runtime asks it per record. */
export function grantAcceptsType(
  g: Pick<GrantDoc, 'status' | 'eventTypes' | 'acceptedEventTypes'>,
  eventType: string,
): boolean {
  if (!g.eventTypes.includes(eventType)) return false
  if (g.status === undefined) return true
  return g.status === 'active' && (g.acceptedEventTypes ?? []).includes(eventType)
}

/** A field path is within a projection when it is one of its paths or below one. */
export function fieldAllowed(path: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => path === a || path.startsWith(a + '.'))
}

/** What of `req` exceeds one entitlement (empty: it fits). */
export function excessOver(req: EntitlementRequest, ent: Entitlement): FieldError[] {
  const out: FieldError[] = []
  for (const [field, allowed] of Object.entries(ent.filter ?? {})) {
    const asked = req.filter?.[field]
    if (!asked) continue
    const extra = asked.in.filter((v) => !allowed.in.some((a) => a === v))
    if (extra.length > 0) {
      out.push({
        field: `filter.${field}`,
        message: `${show(extra)} exceed the grant for ${ent.eventType} (granted: ${show(allowed.in)})`,
      })
    }
  }
  if (ent.fields !== undefined && req.fields !== undefined) {
    req.fields.forEach((f, i) => {
      if (!fieldAllowed(f, ent.fields!))
        out.push({ field: `fields[${i}]`, message: `field ${f} is not in the grant's projection for ${ent.eventType}` })
    })
  }
  return out
}

/** Everything the request asks beyond the grants, each naming the field at fault. */
export function checkWithinGrants(req: EntitlementRequest, grants: readonly GrantDoc[]): FieldError[] {
  const errors: FieldError[] = []
  req.eventTypes.forEach((eventType, i) => {
    if (NO_GRANT_TYPES.has(eventType)) return // the platform's reports about the partner's own subscriptions
    const covering = grants
      .filter((g) => grantAccepts(g).includes(eventType))
      .flatMap((g) => g.entitlements.filter((e) => e.eventType === eventType))
    if (covering.length === 0) {
      const offered = grants.find((g) => g.eventTypes.includes(eventType))
      const message = offered
        ? `event type ${eventType} is offered in grant ${offered._id} but not ` +
          `accepted yet: accept it first (POST /v1/grants/${offered._id}/accept)`
        : `event type ${eventType} is not granted to this partner`
      errors.push({ field: `eventTypes[${i}]`, message })
      return
    }
    const excesses = covering.map((e) => excessOver(req, e))
    if (excesses.some((x) => x.length === 0)) return
    for (const e of excesses[0]!) if (!errors.some((x) => x.field === e.field)) errors.push(e)
  })
  return errors
}

/** Event types a partner subscribes to without a grant (schemas/topics.ts `noGrant`). */
const NO_GRANT_TYPES = new Set(ALL_TOPICS.flatMap((t) => (t.noGrant ? t.eventTypes : [])))

const KNOWN_EVENT_TYPES: readonly string[] = ALL_TOPICS.flatMap((t) => t.eventTypes)

/** Every entitlement names an event type the platform declares (schemas/topics.ts). */
export function checkKnownEventTypes(
  entitlements: readonly Entitlement[],
  known: readonly string[] = KNOWN_EVENT_TYPES,
): FieldError[] {
  const errors: FieldError[] = []
  entitlements.forEach((e, i) => {
    if (!known.includes(e.eventType))
      errors.push({
        field: `entitlements[${i}].eventType`,
        message: `unknown event type ${e.eventType}; known: ${known.join(', ')}`,
      })
  })
  return errors
}

/** An entitlement list names each event type once, and its filters are not empty sets. */
export function checkEntitlements(entitlements: readonly Entitlement[]): FieldError[] {
  const errors: FieldError[] = []
  const seen = new Set<string>()
  entitlements.forEach((e, i) => {
    if (seen.has(e.eventType))
      errors.push({ field: `entitlements[${i}].eventType`, message: `event type ${e.eventType} appears twice` })
    seen.add(e.eventType)
  })
  return errors
}
