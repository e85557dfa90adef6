/**
 * The control plane's operations, each checked against the caller (docs/tenancy.md):
 *  - admin sees and changes everything;
 *  - a publisher sees its organization and its grants, and manages its own keys. A grant is an offer
 *    until the partner accepts it: before that the publisher sees only the partner's public name.
 *    With an accepted grant it sees the partner's organization, and its subscriptions to the
 *    accepted event types without their sink configuration, delivery policy or secrets, and of their
 *    deliveries only those of its own events (read-only);
 *  - a partner sees and changes its organization, its subscriptions, their connectors and
 *    deliveries, and its keys; it reads the grants offered to it, accepts them, and may end any of
 *    them (decline or revoke) at any time.
 * Whatever a caller may not see is NotFound (404), never Forbidden: ids of other organizations do
 * not leak. Forbidden (403) is only for what a caller can see but its scope may not change.
 *
 * Here: organizations, API keys, grants and maintenance; the subscriptions and their connectors are
 * the class this one extends (subscriptions.ts), the scopes visibility.ts, the delivery policy's
 * defaults delivery-policy.ts.
 */
import type { Db, Filter } from 'mongodb'
import { sinkPlugin } from '../consumers/plugins.ts'
import { configValue, setConfigValue } from '../consumers/secrets.ts'
import { IdempotencyStore } from '../common/idempotency.ts'
import { ApiKeys, type ApiKeyOptions, type CreatedKey } from './api-keys.ts'
import { DEFAULT_DELIVERY_POLICY, migrateDeliveryPolicies, ownDeliveryPolicy } from './delivery-policy.ts'
import { checkEntitlements, checkKnownEventTypes, grantAccepts } from './entitlements.ts'
import { ConflictError, ForbiddenError, NotFoundError, RequestInvalidError, uniqueWrite } from './errors.ts'
import { freeFormErrors } from './free-form.ts'
import { partnerProfileEntry, partnerProfileValue, PARTNER_PROFILE_TOPIC } from './partner-profile.ts'
import { ensureIndexes, newId, page, type Page, type PageRequest } from './store.ts'
import { storedEntitlements } from './stored-keys.ts'
import { ControlPlaneConnectors } from './connectors.ts'
import type { SubscriptionsOptions } from './subscriptions.ts'
import { DealRegistry, type DealSettings } from './deals/index.ts'
import type {
  ApiKeyDoc,
  DeliveryPolicy,
  Entitlement,
  GrantDoc,
  OrganizationDoc,
  OrganizationKind,
  OutboxEntry,
  Principal,
  Scope,
  SinkConfig,
  SubscriptionDoc,
} from './types.ts'
import {
  grantScope,
  isAdmin,
  organizationScope,
  requireOrganization,
  visibleOrganizations,
  type VisibleOrganization,
} from './visibility.ts'

export { DEFAULT_DELIVERY_POLICY, ownDeliveryPolicy } from './delivery-policy.ts'
export type { PartnerAccessChange, SubscriptionCreated, SubscriptionInput, SubscriptionPatch } from './subscriptions.ts'
export type { VisibleOrganization } from './visibility.ts'

export interface ControlPlaneOptions extends SubscriptionsOptions {
  db: Db
  bootstrapKey: string
  apiKeyCacheMs: number
  /** Limits on verifying API keys (failed attempts per client and prefix, hashes at once): see ApiKeys. */
  apiKeyVerification?: Pick<ApiKeyOptions, 'attempts' | 'verifyConcurrency' | 'verifyQueue'>
  idempotencyTtlSeconds: number
  /** Topic of the partner-profile events (default partners.profiles; tests use their own). */
  partnerProfileTopic?: string
  /**
   * The platform's delivery defaults (config delivery.*): what a subscription inherits for the fields it did not set.
   */
  deliveryDefaults?: Partial<DeliveryPolicy>
  /** Deal registration and lead sharing settings (config deals.*). */
  deals?: DealSettings
}

/**
 * Pending events kept per organization at most while the relay is down (each is a full snapshot: the oldest go first).
 */
export const MAX_OUTBOX_ENTRIES = 100

export interface OrganizationInput {
  kind: OrganizationKind
  name: string
  slug: string
  profile?: Record<string, unknown>
}

/** A profile every supported store keeps as sent, or a 422 naming the fields at fault. */
function checkFreeForm(profile: Record<string, unknown> | undefined): void {
  const errors = profile === undefined ? [] : freeFormErrors(profile, 'profile')
  if (errors.length > 0) throw new RequestInvalidError(errors)
}

export class ControlPlane extends ControlPlaneConnectors {
  readonly keys: ApiKeys
  readonly idempotency: IdempotencyStore
  /** Deals, leads and the CRM's inbound connectors (docs/deals.md). */
  readonly registry: DealRegistry
  private readonly partnerProfileTopic: string
  private readonly outboxListeners = new Set<() => void>()

  constructor(options: ControlPlaneOptions) {
    super(options.db, options)
    this.keys = new ApiKeys(this.cols, {
      bootstrapKey: options.bootstrapKey,
      cacheMs: options.apiKeyCacheMs,
      logger: options.logger,
      ...options.apiKeyVerification,
    })
    // a create's answer may hold a key or a secret shown once: stored sealed
    this.idempotency = new IdempotencyStore(this.cols.idempotency, {
      windowMs: options.idempotencyTtlSeconds * 1000,
      seal: options.box,
    })
    this.db = options.db
    this.partnerProfileTopic = options.partnerProfileTopic ?? PARTNER_PROFILE_TOPIC
    this.deliveryDefaults = { ...DEFAULT_DELIVERY_POLICY, ...options.deliveryDefaults }
    this.registry = new DealRegistry(this.cols, this.box, this.logger, options.deals)
  }

  /** The platform's delivery defaults a subscription inherits. */
  readonly deliveryDefaults: DeliveryPolicy

  /** What applies to a subscription's deliveries now: its own values over the platform's defaults. */
  effectiveDeliveryPolicy(sub: SubscriptionDoc): DeliveryPolicy {
    return { ...this.deliveryDefaults, ...ownDeliveryPolicy(sub) }
  }

  /** Called after every write that added an outbox entry (the relay in this process wakes up). */
  onOutboxWrite(listener: () => void): () => void {
    this.outboxListeners.add(listener)
    return () => this.outboxListeners.delete(listener)
  }

  private outboxWritten(): void {
    for (const l of this.outboxListeners) l()
  }

  private readonly db: Db

  async init(): Promise<void> {
    await ensureIndexes(this.db)
    await migrateDeliveryPolicies(this.cols, this.logger)
  }

  // ---------------------------------------------------------------- organizations

  async listOrganizations(
    p: Principal,
    q: { kind?: OrganizationKind | undefined },
    req: PageRequest,
  ): Promise<Page<VisibleOrganization>> {
    const filter: Filter<OrganizationDoc> = { ...(await organizationScope(this.cols, p)) }
    if (q.kind) filter.kind = q.kind
    const found = await page(this.cols.organizations, filter, req)
    return { ...found, items: await visibleOrganizations(this.cols, p, found.items) }
  }

  async getOrganization(p: Principal, id: string): Promise<VisibleOrganization> {
    const doc = await this.cols.organizations.findOne({ $and: [{ _id: id }, await organizationScope(this.cols, p)] })
    if (!doc) throw new NotFoundError('organization', { organizationId: id })
    return (await visibleOrganizations(this.cols, p, [doc]))[0]!
  }

  async createOrganization(p: Principal, input: OrganizationInput): Promise<OrganizationDoc> {
    if (!isAdmin(p)) throw new ForbiddenError('only an admin key may create organizations')
    checkFreeForm(input.profile)
    const now = new Date()
    const doc: OrganizationDoc = {
      _id: newId('org'),
      kind: input.kind,
      name: input.name,
      slug: input.slug,
      profile: input.profile ?? {},
      createdAt: now,
      updatedAt: now,
      version: 1,
    }
    if (doc.kind === 'partner') {
      // The event goes in the same single-document write as the partner (see OrganizationDoc.outbox).
      doc.outbox = [this.profileEvent(doc, doc.profile, doc.version, now)]
      doc.outboxAt = now
    }
    await uniqueWrite(this.cols.organizations.insertOne(doc), 'slug', `an organization with slug ${input.slug} exists`)
    if (doc.outbox) this.outboxWritten()
    return doc
  }

  /** The partner-profile event of a partner after a change; 422 naming each field of the profile at fault. */
  private profileEvent(
    org: { _id: string; name: string },
    profile: Record<string, unknown>,
    sequence: number,
    at: Date,
  ): OutboxEntry {
    const r = partnerProfileValue(org, profile, sequence, at)
    if (r.value === undefined) throw new RequestInvalidError(r.errors, { organizationId: org._id })
    return partnerProfileEntry(org._id, r.value, sequence, at, this.partnerProfileTopic)
  }

  async updateOrganization(
    p: Principal,
    id: string,
    patch: { name?: string; profile?: Record<string, unknown> },
  ): Promise<OrganizationDoc> {
    const org = await this.getOrganization(p, id)
    if (!isAdmin(p) && p.organizationId !== org._id)
      throw new ForbiddenError('a key may only change its own organization')
    checkFreeForm(patch.profile)
    const now = new Date()
    const set: Partial<OrganizationDoc> = { updatedAt: now }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.profile !== undefined) set.profile = patch.profile
    if (org.kind === 'partner') {
      // Every change of a partner publishes its profile: the event rides in this very write.
      const entry = this.profileEvent(
        { _id: org._id, name: set.name ?? org.name },
        set.profile ?? org.profile,
        org.version + 1,
        now,
      )
      const sent = (await this.cols.outboxRelay.findOne({ _id: org._id }))?.sentSequence ?? 0
      set.outbox = [...(org.outbox ?? []).filter((e) => e.sequence > sent), entry].slice(-MAX_OUTBOX_ENTRIES)
      set.outboxAt = now
    }
    const updated = await this.cols.organizations.findOneAndUpdate(
      { _id: id, version: org.version },
      { $set: set, $inc: { version: 1 } },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the organization changed concurrently; read it again and retry')
    if (updated.kind === 'publisher') this.registry.deals.forgetProgram(updated._id)
    if (set.outbox) this.outboxWritten()
    return updated
  }

  // ---------------------------------------------------------------- API keys

  private keyScope(p: Principal): Filter<ApiKeyDoc> {
    return isAdmin(p) ? {} : { organizationId: p.organizationId! }
  }

  listKeys(
    p: Principal,
    q: { organizationId?: string | undefined; prefix?: string | undefined },
    req: PageRequest,
  ): Promise<Page<ApiKeyDoc>> {
    const filter: Filter<ApiKeyDoc> = { ...this.keyScope(p) }
    if (q.organizationId !== undefined)
      filter.organizationId = isAdmin(p) || q.organizationId === p.organizationId ? q.organizationId : '\u0000none'
    if (q.prefix !== undefined) filter.prefix = q.prefix
    return page(this.cols.apiKeys, filter, req)
  }

  async getKey(p: Principal, id: string): Promise<ApiKeyDoc> {
    const doc = await this.cols.apiKeys.findOne({ $and: [{ _id: id }, this.keyScope(p)] })
    if (!doc) throw new NotFoundError('API key', { keyId: id })
    return doc
  }

  async createKey(p: Principal, input: { scope: Scope; organizationId?: string; name: string }): Promise<CreatedKey> {
    let organizationId: string | null = null
    if (input.scope === 'admin') {
      if (!isAdmin(p)) throw new ForbiddenError('only an admin key may create admin keys')
      if (input.organizationId !== undefined)
        throw new RequestInvalidError([{ field: 'organizationId', message: 'admin keys belong to no organization' }])
    } else {
      organizationId = input.organizationId ?? p.organizationId
      if (organizationId === null)
        throw new RequestInvalidError([{ field: 'organizationId', message: `is required for a ${input.scope} key` }])
      if (!isAdmin(p) && organizationId !== p.organizationId)
        throw new RequestInvalidError([{ field: 'organizationId', message: `no such organization ${organizationId}` }])
      if (!isAdmin(p) && input.scope !== p.scope)
        throw new ForbiddenError(`a ${p.scope} key may only create ${p.scope} keys`)
      await requireOrganization(this.cols, organizationId, input.scope, 'organizationId')
    }
    return this.keys.create({ scope: input.scope, organizationId, name: input.name, createdBy: p.keyId })
  }

  async revokeKey(p: Principal, id: string): Promise<ApiKeyDoc> {
    await this.getKey(p, id)
    return (await this.keys.revoke(id))!
  }

  async rotateKey(p: Principal, id: string, overlapSeconds: number): Promise<CreatedKey> {
    const old = await this.getKey(p, id)
    if (old.revokedAt !== null) throw new ConflictError('a revoked key cannot be rotated')
    if (old.expiresAt !== null && old.expiresAt <= new Date())
      throw new ConflictError('an expired key cannot be rotated')
    return this.keys.rotate(old, overlapSeconds, p.keyId)
  }

  // ---------------------------------------------------------------- grants

  listGrants(
    p: Principal,
    q: { partnerId?: string | undefined; publisherId?: string | undefined },
    req: PageRequest,
  ): Promise<Page<GrantDoc>> {
    const filter: Filter<GrantDoc> = { ...grantScope(p) }
    if (q.partnerId !== undefined)
      filter.partnerId = filter.partnerId !== undefined && filter.partnerId !== q.partnerId ? '\u0000none' : q.partnerId
    if (q.publisherId !== undefined)
      filter.publisherId =
        filter.publisherId !== undefined && filter.publisherId !== q.publisherId ? '\u0000none' : q.publisherId
    return page(this.cols.grants, filter, req)
  }

  async getGrant(p: Principal, id: string): Promise<GrantDoc> {
    const doc = await this.cols.grants.findOne({ $and: [{ _id: id }, grantScope(p)] })
    if (!doc) throw new NotFoundError('grant', { grantId: id })
    return doc
  }

  private canChangeGrant(p: Principal, g: GrantDoc): void {
    if (isAdmin(p) || (p.scope === 'publisher' && p.organizationId === g.publisherId)) return
    throw new ForbiddenError(
      'only the publisher that gave a grant (or an admin) may change its ' +
        'entitlements; the partner accepts it or ends it (DELETE)',
    )
  }

  /** Either side of a relationship may end it: the publisher revokes its offer, the partner declines or revokes. */
  private canEndGrant(p: Principal, g: GrantDoc): void {
    if (
      isAdmin(p) ||
      (p.scope === 'publisher' && p.organizationId === g.publisherId) ||
      (p.scope === 'partner' && p.organizationId === g.partnerId)
    )
      return
    throw new ForbiddenError('only the publisher or the partner of a grant (or an admin) may end it')
  }

  async createGrant(
    p: Principal,
    input: { publisherId?: string; partnerId: string; entitlements: Entitlement[] },
  ): Promise<GrantDoc> {
    if (p.scope === 'partner') throw new ForbiddenError('a partner key cannot give grants')
    const publisherId = input.publisherId ?? p.organizationId
    if (publisherId === null)
      throw new RequestInvalidError([{ field: 'publisherId', message: 'is required with an admin key' }])
    if (!isAdmin(p) && publisherId !== p.organizationId)
      throw new RequestInvalidError([{ field: 'publisherId', message: `no such organization ${publisherId}` }])
    await requireOrganization(this.cols, publisherId, 'publisher', 'publisherId')
    await requireOrganization(this.cols, input.partnerId, 'partner', 'partnerId')
    const errors = [...checkKnownEventTypes(input.entitlements), ...checkEntitlements(input.entitlements)]
    if (errors.length > 0) throw new RequestInvalidError(errors)
    const now = new Date()
    const doc: GrantDoc = {
      _id: newId('grt'),
      publisherId,
      partnerId: input.partnerId,
      entitlements: storedEntitlements(input.entitlements),
      eventTypes: input.entitlements.map((e) => e.eventType),
      // An offer: nothing is delivered and the publisher sees only the partner's name until it accepts.
      status: 'offered',
      acceptedEventTypes: [],
      acceptedAt: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    }
    await uniqueWrite(
      this.cols.grants.insertOne(doc),
      'partnerId',
      `publisher ${publisherId} already has a grant for partner ${input.partnerId}: change that one`,
    )
    return doc
  }

  async updateGrant(p: Principal, id: string, patch: { entitlements: Entitlement[] }): Promise<GrantDoc> {
    const g = await this.getGrant(p, id)
    this.canChangeGrant(p, g)
    const errors = [...checkKnownEventTypes(patch.entitlements), ...checkEntitlements(patch.entitlements)]
    if (errors.length > 0) throw new RequestInvalidError(errors)
    const eventTypes = patch.entitlements.map((e) => e.eventType)
    // Removed event types stop at once; added ones stay offered until the partner accepts again.
    const accepted = grantAccepts(g).filter((t) => eventTypes.includes(t))
    const updated = await this.cols.grants.findOneAndUpdate(
      { _id: id, version: g.version },
      {
        $set: {
          entitlements: storedEntitlements(patch.entitlements),
          eventTypes,
          acceptedEventTypes: accepted,
          status: g.status === 'offered' ? 'offered' : 'active',
          updatedAt: new Date(),
        },
        $inc: { version: 1 },
      },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the grant changed concurrently; read it again and retry')
    await this.accessChanged(updated.partnerId)
    return updated
  }

  /**
   * The partner accepts a grant as it stands now (every event type it offers). Accepting what is
   * already accepted changes nothing. `version` (optional) accepts only that version of the grant:
   * a 409 if the publisher changed it meanwhile, so a partner never accepts what it has not read.
   */
  async acceptGrant(p: Principal, id: string, version?: number): Promise<GrantDoc> {
    const g = await this.getGrant(p, id)
    if (!isAdmin(p) && !(p.scope === 'partner' && p.organizationId === g.partnerId))
      throw new ForbiddenError('only the partner a grant is offered to (or an admin) may accept it')
    if (version !== undefined && version !== g.version)
      throw new ConflictError(
        `the grant is at version ${g.version}, not ${version}: read it again before accepting`,
        'version',
      )
    if (g.status === 'active' && grantAccepts(g).length === g.eventTypes.length) return g
    const now = new Date()
    const updated = await this.cols.grants.findOneAndUpdate(
      { _id: id, version: g.version },
      {
        $set: { status: 'active', acceptedEventTypes: g.eventTypes, acceptedAt: now, updatedAt: now },
        $inc: { version: 1 },
      },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the grant changed concurrently; read it again and accept again', 'version')
    await this.accessChanged(updated.partnerId)
    return updated
  }

  async deleteGrant(p: Principal, id: string): Promise<void> {
    const g = await this.getGrant(p, id)
    this.canEndGrant(p, g)
    await this.cols.grants.deleteOne({ _id: id })
    await this.accessChanged(g.partnerId)
  }

  // ---------------------------------------------------------------- maintenance

  /** Key rotation: re-seals every secret at rest with the current key. Returns how many changed. */
  async resealSecrets(): Promise<number> {
    let changed = 0
    const current = this.box.currentKeyId
    const stale = (s: unknown) => typeof s === 'string' && this.box.keyIdOf(s) !== current
    for await (const sub of this.cols.subscriptions.find({})) {
      const secretPaths = sinkPlugin(sub.sink.type).secretPaths.filter((path) => stale(configValue(sub.sink, path)))
      const staleSecrets = sub.webhookSecrets.some((s) => stale(s.sealed))
      if (secretPaths.length === 0 && !staleSecrets) continue
      const sink = structuredClone(sub.sink) as unknown as Record<string, unknown>
      for (const path of secretPaths) setConfigValue(sink, path, this.box.reseal(configValue(sink, path) as string))
      const webhookSecrets = sub.webhookSecrets.map((s) => ({ ...s, sealed: this.box.reseal(s.sealed) }))
      // Same version on purpose: a reseal changes no meaning, and a concurrent edit wins (and seals anew).
      const r = await this.cols.subscriptions.updateOne(
        { _id: sub._id, version: sub.version },
        { $set: { sink: sink as unknown as SinkConfig, webhookSecrets } },
      )
      changed += r.modifiedCount
    }
    for await (const rec of this.cols.idempotency.find({ state: 'done' })) {
      if (!rec.response || !stale(rec.response.body)) continue
      const r = await this.cols.idempotency.updateOne(
        { _id: rec._id, state: 'done' },
        { $set: { response: { ...rec.response, body: this.box.reseal(rec.response.body) } } },
      )
      changed += r.modifiedCount
    }
    changed += await this.registry.inbound.resealSecrets()
    if (changed > 0) this.logger.info('secrets re-encrypted with the current key', { count: changed, keyId: current })
    return changed
  }

  /**
   * Periodic cleanup (no TTL indexes in the store): expired idempotency records and webhook secrets, and the delivery
   * logs of deleted subscriptions a process did not finish removing (log-removals.ts).
   */
  async sweep(now = new Date()): Promise<{ idempotency: number; webhookSecrets: number }> {
    const idempotency = await this.idempotency.sweep(now)
    await this.registry.inbound.sweep(now)
    let webhookSecrets = 0
    for await (const sub of this.cols.subscriptions.find({ 'webhookSecrets.expiresAt': { $lte: now } })) {
      const kept = sub.webhookSecrets.filter((s) => s.expiresAt === null || s.expiresAt > now)
      if (kept.length === sub.webhookSecrets.length) continue
      const r = await this.cols.subscriptions.updateOne(
        { _id: sub._id, version: sub.version },
        { $set: { webhookSecrets: kept } },
      )
      webhookSecrets += r.modifiedCount ? sub.webhookSecrets.length - kept.length : 0
    }
    await this.logRemovals.run()
    return { idempotency, webhookSecrets }
  }
}
