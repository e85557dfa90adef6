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
 */
import type { Db, Filter } from 'mongodb'
import type { Logger } from '../common/logger.ts'
import { generateWebhookSecret, type SecretBox } from '../common/secret-box.ts'
import { RetriableError, UrlRefusedError } from '../common/errors.ts'
import type { SinkCheck, SinkControl } from '../consumers/plugin.ts'
import { sinkPlugin } from '../consumers/plugins.ts'
import { configValue, openSecrets, sealSecrets, setConfigValue } from '../consumers/secrets.ts'
import { ALL_TOPICS } from '../schemas/topics.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import { ApiKeys, type ApiKeyOptions, type CreatedKey } from './api-keys.ts'
import { DeliveryLog } from './deliveries.ts'
import { checkEntitlements, checkKnownEventTypes, checkWithinGrants, grantAccepts } from './entitlements.ts'
import { encodePins, pinsOf } from './schema-pins.ts'
import { entitlementsOf, filterOf, storedEntitlements, storedFilter } from './stored-keys.ts'
import { ConflictError, ForbiddenError, isDuplicateKey, NotFoundError, RequestInvalidError, type FieldError } from './errors.ts'
import { IdempotencyStore } from '../common/idempotency.ts'
import { freeFormErrors } from './free-form.ts'
import { partnerProfileEntry, partnerProfileValue, PARTNER_PROFILE_TOPIC } from './partner-profile.ts'
import { bulkWriteBounded, collections, ensureIndexes, newId, page, type Collections, type Page, type PageRequest } from './store.ts'
import type {
  ApiKeyDoc,
  ConnectorDoc,
  ConnectorStatus,
  DeliveryPolicy,
  DesiredState,
  Entitlement,
  GrantDoc,
  OffsetReset,
  OrganizationDoc,
  OrganizationKind,
  OutboxEntry,
  Principal,
  RowFilter,
  Scope,
  SinkConfig,
  StartFrom,
  SubscriptionDoc,
  WebhookSecretDoc,
} from './types.ts'

export interface ControlPlaneOptions {
  db: Db
  box: SecretBox
  urlGuard: UrlGuard
  logger: Logger
  bootstrapKey: string
  apiKeyCacheMs: number
  /** Limits on verifying API keys (failed attempts per client and prefix, hashes at once): see ApiKeys. */
  apiKeyVerification?: Pick<ApiKeyOptions, 'attempts' | 'verifyConcurrency' | 'verifyQueue'>
  idempotencyTtlSeconds: number
  /** Topic of the partner-profile events (default partners.profiles; tests use their own). */
  partnerProfileTopic?: string
  /** The platform's delivery defaults (config delivery.*): what a subscription inherits for the fields it did not set. */
  deliveryDefaults?: Partial<DeliveryPolicy>
  /**
   * Kafka access for partners (kafka-topic subscriptions): the prefix of partner topics, users and
   * groups; absent: kafka-topic subscriptions are refused (no partner listener is configured).
   */
  partnerKafka?: { topicPrefix: string }
}

/** What changed a partner's Kafka access (control-plane/partner-kafka.ts reconciles on it). */
export interface PartnerAccessChange {
  partnerId: string
  /** Partner topics whose subscription was deleted (the topic goes too). */
  removedTopics: string[]
}

/** Pending events kept per organization at most while the relay is down (each is a full snapshot: the oldest go first). */
export const MAX_OUTBOX_ENTRIES = 100

/**
 * The delivery policy's defaults when the configuration names none. They were once copied into every
 * subscription; documents from then are recognized (all five fields, no deliveryPolicyOwn) and the
 * values equal to these are taken as inherited (migrateDeliveryPolicies).
 */
export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = {
  retrySchedule: [5, 300, 1800, 7200, 18000, 36000, 36000],
  timeoutMs: 10_000,
  rateLimitPerSecond: 0,
  batchSize: 1,
  disableAfterFailingSeconds: 5 * 24 * 3600,
}

/** An organization as a caller may see it; `relationship: 'offered'` marks a partner of which a publisher sees only the public name. */
export type VisibleOrganization = OrganizationDoc & { relationship?: 'offered' | 'active' | undefined }

export interface OrganizationInput {
  kind: OrganizationKind
  name: string
  slug: string
  profile?: Record<string, unknown>
}

export interface SubscriptionInput {
  partnerId?: string
  name: string
  eventTypes: string[]
  filter?: RowFilter
  fields?: string[]
  schemaVersions?: Record<string, number>
  sink: SinkConfig
  deliveryPolicy?: Partial<DeliveryPolicy>
  startFrom?: StartFrom
}

export type SubscriptionPatch = Partial<Omit<SubscriptionInput, 'partnerId' | 'startFrom'>>

export interface SubscriptionCreated {
  subscription: SubscriptionDoc
  /** The webhook secret, once (webhook sinks). */
  webhookSecret: string | null
}

/** A profile every supported store keeps as sent, or a 422 naming the fields at fault. */
function checkFreeForm(profile: Record<string, unknown> | undefined): void {
  const errors = profile === undefined ? [] : freeFormErrors(profile, 'profile')
  if (errors.length > 0) throw new RequestInvalidError(errors)
}

export class ControlPlane {
  readonly cols: Collections
  readonly keys: ApiKeys
  readonly deliveries: DeliveryLog
  readonly idempotency: IdempotencyStore
  readonly box: SecretBox
  /** The SSRF guard of this process (sink URLs and connection strings; the workers' sockets connect through it). */
  readonly guard: UrlGuard
  private readonly logger: Logger
  private readonly partnerProfileTopic: string
  private readonly outboxListeners = new Set<() => void>()
  private readonly accessListeners = new Set<(change: PartnerAccessChange) => Promise<void>>()
  private readonly partnerKafka: { topicPrefix: string } | undefined

  constructor(options: ControlPlaneOptions) {
    this.cols = collections(options.db)
    this.box = options.box
    this.guard = options.urlGuard
    this.logger = options.logger
    this.keys = new ApiKeys(this.cols, { bootstrapKey: options.bootstrapKey, cacheMs: options.apiKeyCacheMs, logger: options.logger, ...options.apiKeyVerification })
    this.deliveries = new DeliveryLog(this.cols)
    // a create's answer may hold a key or a secret shown once: stored sealed
    this.idempotency = new IdempotencyStore(this.cols.idempotency, { windowMs: options.idempotencyTtlSeconds * 1000, seal: options.box })
    this.db = options.db
    this.partnerProfileTopic = options.partnerProfileTopic ?? PARTNER_PROFILE_TOPIC
    this.deliveryDefaults = { ...DEFAULT_DELIVERY_POLICY, ...options.deliveryDefaults }
    this.partnerKafka = options.partnerKafka
  }

  /**
   * Called (and awaited) after every change that can alter a partner's Kafka access. A listener that
   * fails is logged, not thrown: the change is stored, and the periodic reconcile applies it later.
   */
  onPartnerAccessChange(listener: (change: PartnerAccessChange) => Promise<void>): () => void {
    this.accessListeners.add(listener)
    return () => this.accessListeners.delete(listener)
  }

  private async accessChanged(partnerId: string, removedTopics: string[] = []): Promise<void> {
    for (const l of this.accessListeners) {
      try {
        await l({ partnerId, removedTopics })
      } catch (err) {
        this.logger.warn('partner Kafka access not reconciled now (the periodic reconcile retries)', { partnerId, error: err })
      }
    }
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
    await this.migrateDeliveryPolicies()
  }

  /**
   * Subscriptions stored with a frozen copy of the default delivery policy: the values equal to the
   * old defaults become inherited, the rest stay the subscription's own. Idempotent (marks each).
   */
  private async migrateDeliveryPolicies(): Promise<void> {
    const legacy = await this.cols.subscriptions.find({ deliveryPolicyOwn: { $exists: false } }, { projection: { _id: 1, deliveryPolicy: 1, version: 1 } }).toArray()
    for (const s of legacy) {
      await this.cols.subscriptions.updateOne({ _id: s._id, deliveryPolicyOwn: { $exists: false } }, { $set: { deliveryPolicy: ownDeliveryPolicy(s as SubscriptionDoc), deliveryPolicyOwn: true } })
    }
    if (legacy.length > 0) this.logger.info('delivery policies migrated: default values are inherited now', { subscriptions: legacy.length })
  }

  // ---------------------------------------------------------------- visibility

  private isAdmin(p: Principal): boolean {
    return p.scope === 'admin'
  }

  /** The partners a publisher has a grant with: accepted (the relationship is on) or only offered. */
  private async grantedPartners(publisherId: string): Promise<{ all: string[]; accepted: Set<string> }> {
    const grants = await this.cols.grants.find({ publisherId }, { projection: { partnerId: 1, status: 1, eventTypes: 1, acceptedEventTypes: 1 } }).toArray()
    return { all: grants.map((g) => g.partnerId), accepted: new Set(grants.filter((g) => grantAccepts(g).length > 0).map((g) => g.partnerId)) }
  }

  private async organizationScope(p: Principal): Promise<Filter<OrganizationDoc>> {
    if (this.isAdmin(p)) return {}
    const own = p.organizationId!
    if (p.scope === 'publisher') return { _id: { $in: [own, ...(await this.grantedPartners(own)).all] } }
    return { _id: own }
  }

  /**
   * What a caller may see of organizations: a publisher sees of a partner whose grant it has only
   * offered (or whose acceptance was withdrawn) the public name, marked `relationship: 'offered'`.
   */
  private async visibleOrganizations(p: Principal, docs: OrganizationDoc[]): Promise<VisibleOrganization[]> {
    if (p.scope !== 'publisher') return docs
    const { accepted } = await this.grantedPartners(p.organizationId!)
    return docs.map((d) => (d._id === p.organizationId || accepted.has(d._id) ? { ...d, relationship: d._id === p.organizationId ? undefined : 'active' } : { ...d, relationship: 'offered' }))
  }

  private grantScope(p: Principal): Filter<GrantDoc> {
    if (this.isAdmin(p)) return {}
    return p.scope === 'publisher' ? { publisherId: p.organizationId! } : { partnerId: p.organizationId! }
  }

  /** Subscriptions (and so connectors and deliveries) a caller can read: a publisher, those to the event types its partners accepted. */
  private async subscriptionScope(p: Principal): Promise<Filter<SubscriptionDoc>> {
    if (this.isAdmin(p)) return {}
    if (p.scope === 'partner') return { partnerId: p.organizationId! }
    const grants = (await this.cols.grants.find({ publisherId: p.organizationId! }).toArray()).map((g) => ({ partnerId: g.partnerId, types: grantAccepts(g) })).filter((g) => g.types.length > 0)
    if (grants.length === 0) return { _id: { $in: [] } }
    return { $or: grants.map((g) => ({ partnerId: g.partnerId, eventTypes: { $in: g.types } })) }
  }

  private canChangeSubscription(p: Principal, sub: SubscriptionDoc): void {
    if (this.isAdmin(p) || (p.scope === 'partner' && p.organizationId === sub.partnerId)) return
    throw new ForbiddenError('only the partner that owns a subscription (or an admin) may change it')
  }

  // ---------------------------------------------------------------- organizations

  async listOrganizations(p: Principal, q: { kind?: OrganizationKind | undefined }, req: PageRequest): Promise<Page<VisibleOrganization>> {
    const filter: Filter<OrganizationDoc> = { ...(await this.organizationScope(p)) }
    if (q.kind) filter.kind = q.kind
    const found = await page(this.cols.organizations, filter, req)
    return { ...found, items: await this.visibleOrganizations(p, found.items) }
  }

  async getOrganization(p: Principal, id: string): Promise<VisibleOrganization> {
    const doc = await this.cols.organizations.findOne({ $and: [{ _id: id }, await this.organizationScope(p)] })
    if (!doc) throw new NotFoundError('organization', { organizationId: id })
    return (await this.visibleOrganizations(p, [doc]))[0]!
  }

  async createOrganization(p: Principal, input: OrganizationInput): Promise<OrganizationDoc> {
    if (!this.isAdmin(p)) throw new ForbiddenError('only an admin key may create organizations')
    checkFreeForm(input.profile)
    const now = new Date()
    const doc: OrganizationDoc = { _id: newId('org'), kind: input.kind, name: input.name, slug: input.slug, profile: input.profile ?? {}, createdAt: now, updatedAt: now, version: 1 }
    if (doc.kind === 'partner') {
      // The event goes in the same single-document write as the partner (see OrganizationDoc.outbox).
      doc.outbox = [this.profileEvent(doc, doc.profile, doc.version, now)]
      doc.outboxAt = now
    }
    try {
      await this.cols.organizations.insertOne(doc)
    } catch (err) {
      if (isDuplicateKey(err)) throw new ConflictError(`an organization with slug ${input.slug} exists`, 'slug')
      throw err
    }
    if (doc.outbox) this.outboxWritten()
    return doc
  }

  /** The partner-profile event of a partner after a change; 422 naming each field of the profile at fault. */
  private profileEvent(org: { _id: string; name: string }, profile: Record<string, unknown>, sequence: number, at: Date): OutboxEntry {
    const r = partnerProfileValue(org, profile, sequence, at)
    if (r.value === undefined) throw new RequestInvalidError(r.errors, { organizationId: org._id })
    return partnerProfileEntry(org._id, r.value, sequence, at, this.partnerProfileTopic)
  }

  async updateOrganization(p: Principal, id: string, patch: { name?: string; profile?: Record<string, unknown> }): Promise<OrganizationDoc> {
    const org = await this.getOrganization(p, id)
    if (!this.isAdmin(p) && p.organizationId !== org._id) throw new ForbiddenError('a key may only change its own organization')
    checkFreeForm(patch.profile)
    const now = new Date()
    const set: Partial<OrganizationDoc> = { updatedAt: now }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.profile !== undefined) set.profile = patch.profile
    if (org.kind === 'partner') {
      // Every change of a partner publishes its profile: the event rides in this very write.
      const entry = this.profileEvent({ _id: org._id, name: set.name ?? org.name }, set.profile ?? org.profile, org.version + 1, now)
      const sent = (await this.cols.outboxRelay.findOne({ _id: org._id }))?.sentSequence ?? 0
      set.outbox = [...(org.outbox ?? []).filter((e) => e.sequence > sent), entry].slice(-MAX_OUTBOX_ENTRIES)
      set.outboxAt = now
    }
    const updated = await this.cols.organizations.findOneAndUpdate({ _id: id, version: org.version }, { $set: set, $inc: { version: 1 } }, { returnDocument: 'after' })
    if (!updated) throw new ConflictError('the organization changed concurrently; read it again and retry')
    if (set.outbox) this.outboxWritten()
    return updated
  }

  private async requireOrganization(id: string, kind: OrganizationKind, field: string, visibleTo?: Principal): Promise<OrganizationDoc> {
    const filter: Filter<OrganizationDoc> = visibleTo ? { $and: [{ _id: id }, await this.organizationScope(visibleTo)] } : { _id: id }
    const org = await this.cols.organizations.findOne(filter)
    if (!org) throw new RequestInvalidError([{ field, message: `no such organization ${id}` }])
    if (org.kind !== kind) throw new RequestInvalidError([{ field, message: `organization ${id} is a ${org.kind}, not a ${kind}` }])
    return org
  }

  // ---------------------------------------------------------------- API keys

  private keyScope(p: Principal): Filter<ApiKeyDoc> {
    return this.isAdmin(p) ? {} : { organizationId: p.organizationId! }
  }

  listKeys(p: Principal, q: { organizationId?: string | undefined; prefix?: string | undefined }, req: PageRequest): Promise<Page<ApiKeyDoc>> {
    const filter: Filter<ApiKeyDoc> = { ...this.keyScope(p) }
    if (q.organizationId !== undefined) filter.organizationId = this.isAdmin(p) || q.organizationId === p.organizationId ? q.organizationId : '\u0000none'
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
      if (!this.isAdmin(p)) throw new ForbiddenError('only an admin key may create admin keys')
      if (input.organizationId !== undefined) throw new RequestInvalidError([{ field: 'organizationId', message: 'admin keys belong to no organization' }])
    } else {
      organizationId = input.organizationId ?? p.organizationId
      if (organizationId === null) throw new RequestInvalidError([{ field: 'organizationId', message: `is required for a ${input.scope} key` }])
      if (!this.isAdmin(p) && organizationId !== p.organizationId) throw new RequestInvalidError([{ field: 'organizationId', message: `no such organization ${organizationId}` }])
      if (!this.isAdmin(p) && input.scope !== p.scope) throw new ForbiddenError(`a ${p.scope} key may only create ${p.scope} keys`)
      await this.requireOrganization(organizationId, input.scope, 'organizationId')
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
    if (old.expiresAt !== null && old.expiresAt <= new Date()) throw new ConflictError('an expired key cannot be rotated')
    return this.keys.rotate(old, overlapSeconds, p.keyId)
  }

  // ---------------------------------------------------------------- grants

  listGrants(p: Principal, q: { partnerId?: string | undefined; publisherId?: string | undefined }, req: PageRequest): Promise<Page<GrantDoc>> {
    const filter: Filter<GrantDoc> = { ...this.grantScope(p) }
    if (q.partnerId !== undefined) filter.partnerId = filter.partnerId !== undefined && filter.partnerId !== q.partnerId ? '\u0000none' : q.partnerId
    if (q.publisherId !== undefined) filter.publisherId = filter.publisherId !== undefined && filter.publisherId !== q.publisherId ? '\u0000none' : q.publisherId
    return page(this.cols.grants, filter, req)
  }

  async getGrant(p: Principal, id: string): Promise<GrantDoc> {
    const doc = await this.cols.grants.findOne({ $and: [{ _id: id }, this.grantScope(p)] })
    if (!doc) throw new NotFoundError('grant', { grantId: id })
    return doc
  }

  private canChangeGrant(p: Principal, g: GrantDoc): void {
    if (this.isAdmin(p) || (p.scope === 'publisher' && p.organizationId === g.publisherId)) return
    throw new ForbiddenError('only the publisher that gave a grant (or an admin) may change its entitlements; the partner accepts it or ends it (DELETE)')
  }

  /** Either side of a relationship may end it: the publisher revokes its offer, the partner declines or revokes. */
  private canEndGrant(p: Principal, g: GrantDoc): void {
    if (this.isAdmin(p) || (p.scope === 'publisher' && p.organizationId === g.publisherId) || (p.scope === 'partner' && p.organizationId === g.partnerId)) return
    throw new ForbiddenError('only the publisher or the partner of a grant (or an admin) may end it')
  }

  async createGrant(p: Principal, input: { publisherId?: string; partnerId: string; entitlements: Entitlement[] }): Promise<GrantDoc> {
    if (p.scope === 'partner') throw new ForbiddenError('a partner key cannot give grants')
    const publisherId = input.publisherId ?? p.organizationId
    if (publisherId === null) throw new RequestInvalidError([{ field: 'publisherId', message: 'is required with an admin key' }])
    if (!this.isAdmin(p) && publisherId !== p.organizationId) throw new RequestInvalidError([{ field: 'publisherId', message: `no such organization ${publisherId}` }])
    await this.requireOrganization(publisherId, 'publisher', 'publisherId')
    await this.requireOrganization(input.partnerId, 'partner', 'partnerId')
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
    try {
      await this.cols.grants.insertOne(doc)
    } catch (err) {
      if (isDuplicateKey(err)) throw new ConflictError(`publisher ${publisherId} already has a grant for partner ${input.partnerId}: change that one`, 'partnerId')
      throw err
    }
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
      { $set: { entitlements: storedEntitlements(patch.entitlements), eventTypes, acceptedEventTypes: accepted, status: g.status === 'offered' ? 'offered' : 'active', updatedAt: new Date() }, $inc: { version: 1 } },
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
    if (!this.isAdmin(p) && !(p.scope === 'partner' && p.organizationId === g.partnerId)) throw new ForbiddenError('only the partner a grant is offered to (or an admin) may accept it')
    if (version !== undefined && version !== g.version) throw new ConflictError(`the grant is at version ${g.version}, not ${version}: read it again before accepting`, 'version')
    if (g.status === 'active' && grantAccepts(g).length === g.eventTypes.length) return g
    const now = new Date()
    const updated = await this.cols.grants.findOneAndUpdate(
      { _id: id, version: g.version },
      { $set: { status: 'active', acceptedEventTypes: g.eventTypes, acceptedAt: now, updatedAt: now }, $inc: { version: 1 } },
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

  // ---------------------------------------------------------------- subscriptions

  async listSubscriptions(p: Principal, q: { partnerId?: string | undefined; eventType?: string | undefined }, req: PageRequest): Promise<Page<SubscriptionDoc>> {
    const parts: Filter<SubscriptionDoc>[] = [await this.subscriptionScope(p)]
    if (q.partnerId !== undefined) parts.push({ partnerId: q.partnerId })
    if (q.eventType !== undefined) parts.push({ eventTypes: q.eventType })
    return page(this.cols.subscriptions, parts.length === 1 ? parts[0]! : { $and: parts }, req)
  }

  async getSubscription(p: Principal, id: string): Promise<SubscriptionDoc> {
    const doc = await this.cols.subscriptions.findOne({ $and: [{ _id: id }, await this.subscriptionScope(p)] })
    if (!doc) throw new NotFoundError('subscription', { subscriptionId: id })
    return doc
  }

  /** SSRF guard on every URL of a sink (its type's urlPaths); 422 naming the field. */
  private async checkSinkUrls(sink: SinkConfig): Promise<void> {
    const errors: FieldError[] = []
    for (const path of sinkPlugin(sink.type).urlPaths) {
      const value = configValue(sink, path)
      if (typeof value !== 'string') continue
      try {
        await this.guard.check(value)
      } catch (err) {
        // a host that does not resolve yet is accepted: every connection to it is guarded when it is made
        if (err instanceof RetriableError) this.logger.info('sink URL host does not resolve now; guarded again at connect', { field: `sink.${path}`, error: err })
        else if (err instanceof UrlRefusedError) errors.push({ field: `sink.${path}`, message: `URL refused: ${err.message}` })
        else throw err
      }
    }
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  /** The sink type's own rules (its plug-in, consumers/plugins.ts) on the sink to store: 422 naming each field. */
  private async checkSink(sink: SinkConfig, check: Pick<SinkCheck, 'eventTypes' | 'sent' | 'previous'>): Promise<void> {
    const errors = await sinkPlugin(sink.type).validate(sink, { ...check, topics: ALL_TOPICS, guard: this.guard, logger: this.logger, partnerKafka: this.partnerKafka })
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  /** Seals the secret fields of a sink; a secret left out keeps the previous sealed value (of a sink of the same type). */
  private sealSink(sink: SinkConfig, previous?: SinkConfig): SinkConfig {
    return sealSecrets(sink, sinkPlugin(sink.type).secretPaths, this.box, previous?.type === sink.type ? previous : undefined)
  }

  /** What a sink type that keeps resources beside its subscriptions (a partner topic) works with. */
  private sinkControl(): SinkControl {
    return { cols: this.cols, partnerKafka: this.partnerKafka }
  }

  private async checkAgainstGrants(partnerId: string, s: { eventTypes: string[]; filter?: RowFilter | undefined; fields?: string[] | undefined; schemaVersions?: Record<string, number> | undefined }): Promise<void> {
    const grants = (await this.cols.grants.find({ partnerId }).toArray()).map((g) => ({ ...g, entitlements: entitlementsOf(g.entitlements) }))
    const errors = checkWithinGrants(s, grants)
    for (const t of Object.keys(s.schemaVersions ?? {})) {
      if (!s.eventTypes.includes(t)) errors.push({ field: `schemaVersions.${t}`, message: `pins a version for ${t}, which the subscription does not subscribe to` })
    }
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  private newWebhookSecret(): { plain: string; doc: WebhookSecretDoc } {
    const plain = generateWebhookSecret()
    return { plain, doc: { id: newId('whs'), sealed: this.box.seal(plain), createdAt: new Date(), expiresAt: null } }
  }

  async createSubscription(p: Principal, input: SubscriptionInput): Promise<SubscriptionCreated> {
    if (p.scope === 'publisher') throw new ForbiddenError('a publisher key cannot create subscriptions: partners subscribe')
    const partnerId = input.partnerId ?? p.organizationId
    if (partnerId === null) throw new RequestInvalidError([{ field: 'partnerId', message: 'is required with an admin key' }])
    if (!this.isAdmin(p) && partnerId !== p.organizationId) throw new RequestInvalidError([{ field: 'partnerId', message: `no such organization ${partnerId}` }])
    await this.requireOrganization(partnerId, 'partner', 'partnerId')
    await this.checkAgainstGrants(partnerId, input)
    await this.checkSinkUrls(input.sink)
    const plugin = sinkPlugin(input.sink.type)
    const sealed = this.sealSink(input.sink)
    await this.checkSink(sealed, { eventTypes: input.eventTypes, sent: input.sink })
    const now = new Date()
    const secret = plugin.signingSecrets ? this.newWebhookSecret() : null
    const id = newId('sub')
    const sink = plugin.reserve ? await plugin.reserve(sealed, { id, partnerId, eventTypes: input.eventTypes }, this.sinkControl()) : sealed
    const doc: SubscriptionDoc = {
      _id: id,
      partnerId,
      name: input.name,
      eventTypes: input.eventTypes,
      ...(input.filter !== undefined ? { filter: storedFilter(input.filter)! } : {}),
      ...(input.fields !== undefined ? { fields: input.fields } : {}),
      schemaVersions: encodePins(input.schemaVersions ?? {}),
      sink,
      deliveryPolicy: { ...input.deliveryPolicy },
      deliveryPolicyOwn: true,
      startFrom: input.startFrom ?? 'latest',
      webhookSecrets: secret ? [secret.doc] : [],
      createdAt: now,
      updatedAt: now,
      version: 1,
    }
    try {
      await this.cols.subscriptions.insertOne(doc)
    } catch (err) {
      if (plugin.reserve) await plugin.release?.(id, this.sinkControl())
      if (isDuplicateKey(err)) throw new ConflictError(`partner ${partnerId} already has a subscription named ${input.name}`, 'name')
      throw err
    }
    await this.ensureConnector(doc)
    if (plugin.partnerAccess) await this.accessChanged(partnerId)
    return { subscription: doc, webhookSecret: secret?.plain ?? null }
  }

  async updateSubscription(p: Principal, id: string, patch: SubscriptionPatch): Promise<SubscriptionCreated> {
    const sub = await this.getSubscription(p, id)
    this.canChangeSubscription(p, sub)
    const merged = {
      eventTypes: patch.eventTypes ?? sub.eventTypes,
      filter: 'filter' in patch ? patch.filter : filterOf(sub.filter),
      fields: 'fields' in patch ? patch.fields : sub.fields,
      schemaVersions: patch.schemaVersions ?? pinsOf(sub),
    }
    await this.checkAgainstGrants(sub.partnerId, merged)
    if (patch.sink) await this.checkSinkUrls(patch.sink)
    if (patch.sink && patch.sink.type !== sub.sink.type) {
      const fixed = [sub.sink.type, patch.sink.type].find((t) => sinkPlugin(t).fixed)
      if (fixed) throw new RequestInvalidError([{ field: 'sink.type', message: `a subscription cannot change to or from a ${fixed} sink; create a new subscription` }])
    }
    // a fixed sink type keeps its stored config (its validate refuses what a request would change)
    const sealedSink = patch.sink ? (sinkPlugin(patch.sink.type).fixed ? sub.sink : this.sealSink(patch.sink, sub.sink)) : undefined
    await this.checkSink(sealedSink ?? sub.sink, { eventTypes: merged.eventTypes, sent: patch.sink, previous: { sink: sub.sink, eventTypes: sub.eventTypes } })
    const set: Partial<SubscriptionDoc> = { updatedAt: new Date(), eventTypes: merged.eventTypes, schemaVersions: encodePins(merged.schemaVersions) }
    const unset: Record<string, ''> = {}
    if (merged.filter !== undefined) set.filter = storedFilter(merged.filter)!
    else unset.filter = ''
    if (merged.fields !== undefined) set.fields = merged.fields
    else unset.fields = ''
    if (patch.name !== undefined) set.name = patch.name
    if (patch.deliveryPolicy !== undefined) {
      set.deliveryPolicy = { ...ownDeliveryPolicy(sub), ...patch.deliveryPolicy }
      set.deliveryPolicyOwn = true
    }
    let webhookSecret: string | null = null
    if (patch.sink !== undefined && sealedSink) {
      set.sink = sealedSink
      const now = new Date()
      if (sinkPlugin(patch.sink.type).signingSecrets && !sub.webhookSecrets.some((s) => s.expiresAt === null || s.expiresAt > now)) {
        const secret = this.newWebhookSecret()
        set.webhookSecrets = [secret.doc]
        webhookSecret = secret.plain
      }
    }
    let updated: SubscriptionDoc | null
    try {
      updated = await this.cols.subscriptions.findOneAndUpdate(
        { _id: id, version: sub.version },
        { $set: set, ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}), $inc: { version: 1 } },
        { returnDocument: 'after' },
      )
    } catch (err) {
      if (isDuplicateKey(err)) throw new ConflictError(`partner ${sub.partnerId} already has a subscription named ${patch.name}`, 'name')
      throw err
    }
    if (!updated) throw new ConflictError('the subscription changed concurrently; read it again and retry')
    await this.touchConnector(id)
    if (sinkPlugin(updated.sink.type).partnerAccess) await this.accessChanged(updated.partnerId)
    return { subscription: updated, webhookSecret }
  }

  async deleteSubscription(p: Principal, id: string): Promise<void> {
    const sub = await this.getSubscription(p, id)
    this.canChangeSubscription(p, sub)
    // Connector first: a worker stops delivering before the subscription disappears.
    await this.cols.connectors.deleteOne({ _id: id })
    await this.cols.subscriptions.deleteOne({ _id: id })
    await this.cols.connectorStatus.deleteOne({ _id: id })
    const plugin = sinkPlugin(sub.sink.type)
    const removedTopics = (await plugin.release?.(id, this.sinkControl())) ?? []
    if (plugin.partnerAccess) await this.accessChanged(sub.partnerId, removedTopics)
  }

  /** New webhook secret; the current ones stay valid (and are signed with) for `overlapSeconds`. */
  async rotateWebhookSecret(p: Principal, id: string, overlapSeconds: number): Promise<{ subscription: SubscriptionDoc; webhookSecret: string }> {
    const sub = await this.getSubscription(p, id)
    this.canChangeSubscription(p, sub)
    if (!sinkPlugin(sub.sink.type).signingSecrets) throw new ConflictError('only webhook subscriptions have webhook secrets')
    const now = new Date()
    const until = new Date(now.getTime() + overlapSeconds * 1000)
    const kept = sub.webhookSecrets
      .filter((s) => s.expiresAt === null || s.expiresAt > now)
      .map((s) => ({ ...s, expiresAt: s.expiresAt === null || s.expiresAt > until ? until : s.expiresAt }))
    const secret = this.newWebhookSecret()
    const updated = await this.cols.subscriptions.findOneAndUpdate(
      { _id: id, version: sub.version },
      { $set: { webhookSecrets: [...kept, secret.doc], updatedAt: now }, $inc: { version: 1 } },
      { returnDocument: 'after' },
    )
    if (!updated) throw new ConflictError('the subscription changed concurrently; retry')
    await this.touchConnector(id)
    return { subscription: updated, webhookSecret: secret.plain }
  }

  /** For the sink runtime: the webhook secrets to sign with now (current first). */
  webhookSecretsOf(sub: SubscriptionDoc, now = new Date()): string[] {
    return sub.webhookSecrets
      .filter((s) => s.expiresAt === null || s.expiresAt > now)
      .sort((a, b) => Number(a.expiresAt !== null) - Number(b.expiresAt !== null))
      .map((s) => this.box.open(s.sealed))
  }

  /** For the sink runtime: the sink config with its secrets decrypted. */
  openSink(sink: SinkConfig): SinkConfig {
    return openSecrets(sink, sinkPlugin(sink.type).secretPaths, this.box)
  }

  // ---------------------------------------------------------------- connectors

  private async ensureConnector(sub: SubscriptionDoc): Promise<ConnectorDoc> {
    const now = new Date()
    const doc = await this.cols.connectors.findOneAndUpdate(
      { _id: sub._id },
      {
        $setOnInsert: {
          subscriptionId: sub._id,
          partnerId: sub.partnerId,
          desiredState: 'running',
          generation: 1,
          restartRequestedAt: null,
          offsetReset: null,
          status: null,
          createdAt: now,
          updatedAt: now,
        },
      },
      { upsert: true, returnDocument: 'after' },
    )
    return doc!
  }

  /** A subscription change a worker must pick up: bump the generation. */
  private async touchConnector(id: string): Promise<void> {
    await this.cols.connectors.updateOne({ _id: id }, { $inc: { generation: 1 }, $set: { updatedAt: new Date() } })
  }

  async listConnectors(p: Principal, req: PageRequest): Promise<Page<ConnectorDoc>> {
    let result: Page<ConnectorDoc>
    if (this.isAdmin(p)) result = await page(this.cols.connectors, {}, req)
    else if (p.scope === 'partner') result = await page(this.cols.connectors, { partnerId: p.organizationId! }, req)
    else {
      const subs = await this.cols.subscriptions.find(await this.subscriptionScope(p), { projection: { _id: 1 } }).toArray()
      result = await page(this.cols.connectors, { _id: { $in: subs.map((s) => s._id) } }, req)
    }
    return { ...result, items: await this.withStatus(result.items) }
  }

  async getConnector(p: Principal, id: string): Promise<ConnectorDoc> {
    const sub = await this.getSubscription(p, id)
    const doc = (await this.cols.connectors.findOne({ _id: id })) ?? (await this.ensureConnector(sub))
    return (await this.withStatus([doc]))[0]!
  }

  /** The runtime's status lives in connector_status (one writer: the worker holding the connector). */
  private async withStatus(docs: ConnectorDoc[]): Promise<ConnectorDoc[]> {
    if (docs.length === 0) return docs
    const statuses = await this.cols.connectorStatus.find({ _id: { $in: docs.map((d) => d._id) } }).toArray()
    const byId = new Map(statuses.map(({ _id, ...status }) => [_id, status as ConnectorStatus]))
    return docs.map((d) => ({ ...d, status: byId.get(d._id) ?? d.status ?? null }))
  }

  private async changeConnector(p: Principal, id: string, update: { set: Partial<ConnectorDoc>; onlyIf?: Filter<ConnectorDoc> }): Promise<ConnectorDoc> {
    const sub = await this.getSubscription(p, id)
    this.canChangeSubscription(p, sub)
    await this.getConnector(p, id)
    const updated = await this.cols.connectors.findOneAndUpdate(
      { _id: id, ...(update.onlyIf ?? {}) },
      { $set: { ...update.set, updatedAt: new Date() }, $inc: { generation: 1 } },
      { returnDocument: 'after' },
    )
    return updated ?? (await this.cols.connectors.findOne({ _id: id }))!
  }

  setDesiredState(p: Principal, id: string, state: DesiredState): Promise<ConnectorDoc> {
    // Setting the state it already has changes nothing (no generation bump).
    return this.changeConnector(p, id, { set: { desiredState: state }, onlyIf: { desiredState: { $ne: state } } })
  }

  restartConnector(p: Principal, id: string): Promise<ConnectorDoc> {
    return this.changeConnector(p, id, { set: { restartRequestedAt: new Date() } })
  }

  resetConnector(p: Principal, id: string, to: OffsetReset['to'], timestamp: Date | null): Promise<ConnectorDoc> {
    return this.changeConnector(p, id, {
      set: { offsetReset: { id: newId('rst'), to, timestamp: to === 'timestamp' ? timestamp : null, requestedAt: new Date(), requestedBy: p.keyId } },
    })
  }

  /** For the sink runtime: connectors whose desired state changed after `since` (poll; no change streams). */
  connectorsChangedSince(since: Date, limit = 1000): Promise<ConnectorDoc[]> {
    return this.cols.connectors.find({ updatedAt: { $gt: since } }).sort({ updatedAt: 1 }).limit(limit).toArray()
  }

  /** For the sink runtime: what a worker observes (status does not bump the generation). */
  async reportConnectorStatus(id: string, status: ConnectorStatus): Promise<void> {
    await this.cols.connectorStatus.replaceOne({ _id: id }, { ...status }, { upsert: true })
  }

  /** Many status reports in a few commands (a sink worker reports the subscriptions it holds together). */
  async reportConnectorStatuses(reports: ReadonlyArray<readonly [id: string, status: ConnectorStatus]>): Promise<void> {
    if (reports.length === 0) return
    await bulkWriteBounded(this.cols.connectorStatus, reports.map(([id, status]) => ({ replaceOne: { filter: { _id: id }, replacement: { ...status }, upsert: true } })))
  }

  // ---------------------------------------------------------------- deliveries

  /** The publisher whose events' deliveries a caller may see (undefined: all of them, for a partner or an admin). */
  deliveryPublisherScope(p: Principal): string | undefined {
    return p.scope === 'publisher' ? p.organizationId! : undefined
  }

  async requestRetry(p: Principal, subscriptionId: string, eventId: string | null) {
    const sub = await this.getSubscription(p, subscriptionId)
    this.canChangeSubscription(p, sub)
    if (eventId !== null && !(await this.deliveries.get(subscriptionId, eventId))) throw new NotFoundError('delivery', { eventId })
    return this.deliveries.requestRetry({ subscriptionId, partnerId: sub.partnerId, eventId, requestedBy: p.keyId })
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
      const r = await this.cols.subscriptions.updateOne({ _id: sub._id, version: sub.version }, { $set: { sink: sink as unknown as SinkConfig, webhookSecrets } })
      changed += r.modifiedCount
    }
    for await (const rec of this.cols.idempotency.find({ state: 'done' })) {
      if (!rec.response || !stale(rec.response.body)) continue
      const r = await this.cols.idempotency.updateOne({ _id: rec._id, state: 'done' }, { $set: { response: { ...rec.response, body: this.box.reseal(rec.response.body) } } })
      changed += r.modifiedCount
    }
    if (changed > 0) this.logger.info('secrets re-encrypted with the current key', { count: changed, keyId: current })
    return changed
  }

  /** Periodic cleanup (no TTL indexes in the store): expired idempotency records and webhook secrets. */
  async sweep(now = new Date()): Promise<{ idempotency: number; webhookSecrets: number }> {
    const idempotency = await this.idempotency.sweep(now)
    let webhookSecrets = 0
    for await (const sub of this.cols.subscriptions.find({ 'webhookSecrets.expiresAt': { $lte: now } })) {
      const kept = sub.webhookSecrets.filter((s) => s.expiresAt === null || s.expiresAt > now)
      if (kept.length === sub.webhookSecrets.length) continue
      const r = await this.cols.subscriptions.updateOne({ _id: sub._id, version: sub.version }, { $set: { webhookSecrets: kept } })
      webhookSecrets += r.modifiedCount ? sub.webhookSecrets.length - kept.length : 0
    }
    return { idempotency, webhookSecrets }
  }
}

const LEGACY_POLICY_FIELDS = ['retrySchedule', 'timeoutMs', 'rateLimitPerSecond', 'batchSize', 'disableAfterFailingSeconds'] as const

/**
 * The delivery policy a subscription set itself. A document from before deliveryPolicyOwn holds all
 * five fields (a copy of DEFAULT_DELIVERY_POLICY merged with the input): the values equal to the
 * defaults are taken as inherited.
 */
export function ownDeliveryPolicy(sub: Pick<SubscriptionDoc, 'deliveryPolicy' | 'deliveryPolicyOwn'>): Partial<DeliveryPolicy> {
  const policy = sub.deliveryPolicy ?? {}
  if (sub.deliveryPolicyOwn || !LEGACY_POLICY_FIELDS.every((f) => policy[f] !== undefined)) return policy
  const own: Partial<DeliveryPolicy> = { ...policy }
  for (const f of LEGACY_POLICY_FIELDS) if (JSON.stringify(policy[f]) === JSON.stringify(DEFAULT_DELIVERY_POLICY[f])) delete own[f]
  return own
}
