/**
 * What a caller may see and change (docs/tenancy.md): the scopes of organizations, grants and
 * subscriptions (and so connectors and deliveries) as store filters. What a caller may not see is
 * NotFound (404), never Forbidden: ids of other organizations do not leak.
 */
import type { Filter } from 'mongodb'
import { grantAccepts } from './entitlements.ts'
import { ForbiddenError, RequestInvalidError } from './errors.ts'
import type { Collections } from './store.ts'
import type { GrantDoc, OrganizationDoc, OrganizationKind, Principal, SubscriptionDoc } from './types.ts'

/**
 * An organization as a caller may see it; `relationship: 'offered'` marks a partner of which a publisher sees only the
 * public name.
 */
export type VisibleOrganization = OrganizationDoc & { relationship?: 'offered' | 'active' | undefined }

export function isAdmin(p: Principal): boolean {
  return p.scope === 'admin'
}

/** The partners a publisher has a grant with: accepted (the relationship is on) or only offered. */
async function grantedPartners(
  cols: Collections,
  publisherId: string,
): Promise<{ all: string[]; accepted: Set<string> }> {
  const grants = await cols.grants
    .find({ publisherId }, { projection: { partnerId: 1, status: 1, eventTypes: 1, acceptedEventTypes: 1 } })
    .toArray()
  return {
    all: grants.map((g) => g.partnerId),
    accepted: new Set(grants.filter((g) => grantAccepts(g).length > 0).map((g) => g.partnerId)),
  }
}

export async function organizationScope(cols: Collections, p: Principal): Promise<Filter<OrganizationDoc>> {
  if (isAdmin(p)) return {}
  const own = p.organizationId!
  if (p.scope === 'publisher') return { _id: { $in: [own, ...(await grantedPartners(cols, own)).all] } }
  return { _id: own }
}

/**
 * What a caller may see of organizations: a publisher sees of a partner whose grant it has only
 * offered (or whose acceptance was withdrawn) the public name, marked `relationship: 'offered'`.
 */
export async function visibleOrganizations(
  cols: Collections,
  p: Principal,
  docs: OrganizationDoc[],
): Promise<VisibleOrganization[]> {
  if (p.scope !== 'publisher') return docs
  const { accepted } = await grantedPartners(cols, p.organizationId!)
  return docs.map((d) =>
    d._id === p.organizationId || accepted.has(d._id)
      ? { ...d, relationship: d._id === p.organizationId ? undefined : 'active' }
      : { ...d, relationship: 'offered' },
  )
}

export function grantScope(p: Principal): Filter<GrantDoc> {
  if (isAdmin(p)) return {}
  return p.scope === 'publisher' ? { publisherId: p.organizationId! } : { partnerId: p.organizationId! }
}

/**
 * Subscriptions (and so connectors and deliveries) a caller can read: a publisher, those to the event types its
 * partners accepted.
 */
export async function subscriptionScope(cols: Collections, p: Principal): Promise<Filter<SubscriptionDoc>> {
  if (isAdmin(p)) return {}
  if (p.scope === 'partner') return { partnerId: p.organizationId! }
  const grants = (await cols.grants.find({ publisherId: p.organizationId! }).toArray())
    .map((g) => ({ partnerId: g.partnerId, types: grantAccepts(g) }))
    .filter((g) => g.types.length > 0)
  // its own subscriptions (its CRM reading its deals and leads) and its partners' to what they accepted
  return {
    $or: [
      { partnerId: p.organizationId! },
      ...grants.map((g) => ({ partnerId: g.partnerId, eventTypes: { $in: g.types } })),
    ],
  }
}

export function canChangeSubscription(p: Principal, sub: SubscriptionDoc): void {
  if (isAdmin(p) || p.organizationId === sub.partnerId) return
  throw new ForbiddenError('only the organization that owns a subscription (or an admin) may change it')
}

/** The organization `id` of this kind (visible to the caller when given), or a 422 naming `field`. */
export async function requireOrganization(
  cols: Collections,
  id: string,
  kind: OrganizationKind,
  field: string,
  visibleTo?: Principal,
): Promise<OrganizationDoc> {
  const filter: Filter<OrganizationDoc> = visibleTo
    ? { $and: [{ _id: id }, await organizationScope(cols, visibleTo)] }
    : { _id: id }
  const org = await cols.organizations.findOne(filter)
  if (!org) throw new RequestInvalidError([{ field, message: `no such organization ${id}` }])
  if (org.kind !== kind)
    throw new RequestInvalidError([{ field, message: `organization ${id} is a ${org.kind}, not a ${kind}` }])
  return org
}
