/**
 * The subscriptions half of the control plane (ControlPlane, service.ts, is these operations and the
 * organizations', keys' and grants'): subscriptions within the partner's grants, their sinks checked,
 * sealed and kept by their types' plug-ins (consumers/plugins.ts), their webhook secrets, their
 * connectors' documents (their operations and retry requests are in connectors.ts).
 * Every operation is checked against the caller (visibility.ts, docs/tenancy.md).
 */
import type { Db, Filter } from 'mongodb'
import { RetriableError, UrlRefusedError } from '../common/errors.ts'
import type { Logger } from '../common/logger.ts'
import { generateWebhookSecret, rotatedOut, type SecretBox } from '../common/secret-box.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import type { SinkCheck, SinkControl } from '../consumers/plugin.ts'
import { sinkPlugin } from '../consumers/plugins.ts'
import { configValue, openSecrets, sealSecrets } from '../consumers/secrets.ts'
import { ALL_TOPICS } from '../schemas/topics.ts'
import { DeliveryLog } from './deliveries.ts'
import { LogRemovals } from './log-removals.ts'
import { ownDeliveryPolicy } from './delivery-policy.ts'
import { checkWithinGrants } from './entitlements.ts'
import { ConflictError, NotFoundError, RequestInvalidError, uniqueWrite, type FieldError } from './errors.ts'
import { encodePins, pinsOf } from './schema-pins.ts'
import { collections, newId, page, signalChange, type Collections, type Page, type PageRequest } from './store.ts'
import { entitlementsOf, filterOf, storedFilter } from './stored-keys.ts'
import type {
  ConnectorDoc,
  DeliveryPolicy,
  Principal,
  RowFilter,
  SinkConfig,
  StartFrom,
  SubscriptionDoc,
  WebhookSecretDoc,
} from './types.ts'
import { canChangeSubscription, isAdmin, requireOrganization, subscriptionScope } from './visibility.ts'

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

/** What changed a partner's Kafka access (control-plane/partner-kafka.ts reconciles on it). */
export interface PartnerAccessChange {
  partnerId: string
  /** Partner topics whose subscription was deleted (the topic goes too). */
  removedTopics: string[]
}

export interface SubscriptionsOptions {
  box: SecretBox
  urlGuard: UrlGuard
  logger: Logger
  /**
   * Kafka access for partners (kafka-topic subscriptions): the prefix of partner topics, users and
   * groups; absent: kafka-topic subscriptions are refused (no partner listener is configured).
   */
  partnerKafka?: { topicPrefix: string }
}

/** Event types a publisher may subscribe to for its own records: those of the audience topics (deals, leads). */
const OWN_EVENT_TYPES: readonly string[] = ALL_TOPICS.filter((t) => t.audience !== undefined).flatMap(
  (t) => t.eventTypes,
)

function ownEventTypeErrors(eventTypes: readonly string[]): FieldError[] {
  return eventTypes.flatMap((t, i) =>
    OWN_EVENT_TYPES.includes(t)
      ? []
      : [
          {
            field: `eventTypes[${i}]`,
            message:
              "a publisher subscribes only to its own deals, leads and its partners' subscription health " +
              `(${OWN_EVENT_TYPES.join(', ')})`,
          },
        ],
  )
}

/** The change signal of the connectors (control-plane/store.ts, signalChange). */
export const CONNECTORS_CHANGED = 'connectors'

export class ControlPlaneSubscriptions {
  readonly cols: Collections
  readonly deliveries: DeliveryLog
  /** Deleted subscriptions' delivery logs, removed in the background (log-removals.ts). */
  readonly logRemovals: LogRemovals
  readonly box: SecretBox
  /** The SSRF guard of this process (sink URLs and connection strings; the workers' sockets connect through it). */
  readonly guard: UrlGuard
  protected readonly logger: Logger
  protected readonly partnerKafka: { topicPrefix: string } | undefined
  private readonly accessListeners = new Set<(change: PartnerAccessChange) => Promise<void>>()

  constructor(db: Db, options: SubscriptionsOptions) {
    this.cols = collections(db)
    this.deliveries = new DeliveryLog(this.cols)
    this.logRemovals = new LogRemovals(this.cols.logRemovals, this.deliveries, options.logger)
    this.box = options.box
    this.guard = options.urlGuard
    this.logger = options.logger
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

  protected async accessChanged(partnerId: string, removedTopics: string[] = []): Promise<void> {
    for (const l of this.accessListeners) {
      try {
        await l({ partnerId, removedTopics })
      } catch (err) {
        this.logger.warn('partner Kafka access not reconciled now (the periodic reconcile retries)', {
          partnerId,
          error: err,
        })
      }
    }
  }

  // ---------------------------------------------------------------- subscriptions

  async listSubscriptions(
    p: Principal,
    q: { partnerId?: string | undefined; eventType?: string | undefined },
    req: PageRequest,
  ): Promise<Page<SubscriptionDoc>> {
    const parts: Filter<SubscriptionDoc>[] = [await subscriptionScope(this.cols, p)]
    if (q.partnerId !== undefined) parts.push({ partnerId: q.partnerId })
    if (q.eventType !== undefined) parts.push({ eventTypes: q.eventType })
    return page(this.cols.subscriptions, parts.length === 1 ? parts[0]! : { $and: parts }, req)
  }

  async getSubscription(p: Principal, id: string): Promise<SubscriptionDoc> {
    const doc = await this.cols.subscriptions.findOne({ $and: [{ _id: id }, await subscriptionScope(this.cols, p)] })
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
        if (err instanceof RetriableError)
          this.logger.info('sink URL host does not resolve now; guarded again at connect', {
            field: `sink.${path}`,
            error: err,
          })
        else if (err instanceof UrlRefusedError)
          errors.push({ field: `sink.${path}`, message: `URL refused: ${err.message}` })
        else throw err
      }
    }
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  /** The sink type's own rules (its plug-in, consumers/plugins.ts) on the sink to store: 422 naming each field. */
  private async checkSink(sink: SinkConfig, check: Pick<SinkCheck, 'eventTypes' | 'sent' | 'previous'>): Promise<void> {
    const errors = await sinkPlugin(sink.type).validate(sink, {
      ...check,
      topics: ALL_TOPICS,
      guard: this.guard,
      logger: this.logger,
      partnerKafka: this.partnerKafka,
    })
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  /**
   * Seals the secret fields of a sink; a secret left out keeps the previous sealed value (of a sink of the same type).
   */
  private sealSink(sink: SinkConfig, previous?: SinkConfig): SinkConfig {
    return sealSecrets(
      sink,
      sinkPlugin(sink.type).secretPaths,
      this.box,
      previous?.type === sink.type ? previous : undefined,
    )
  }

  /** What a sink type that keeps resources beside its subscriptions (a partner topic) works with. */
  private sinkControl(): SinkControl {
    return { cols: this.cols, partnerKafka: this.partnerKafka }
  }

  private async checkAgainstGrants(
    partnerId: string,
    s: {
      eventTypes: string[]
      filter?: RowFilter | undefined
      fields?: string[] | undefined
      schemaVersions?: Record<string, number> | undefined
    },
  ): Promise<void> {
    const owner = await this.cols.organizations.findOne({ _id: partnerId }, { projection: { kind: 1 } })
    // A publisher's own subscription (its CRM) reads its own deals and leads: no grant, only those topics.
    const errors =
      owner?.kind === 'publisher'
        ? ownEventTypeErrors(s.eventTypes)
        : checkWithinGrants(
            s,
            (await this.cols.grants.find({ partnerId }).toArray()).map((g) => ({
              ...g,
              entitlements: entitlementsOf(g.entitlements),
            })),
          )
    for (const t of Object.keys(s.schemaVersions ?? {})) {
      if (!s.eventTypes.includes(t))
        errors.push({
          field: `schemaVersions.${t}`,
          message: `pins a version for ${t}, which the subscription does not subscribe to`,
        })
    }
    if (errors.length > 0) throw new RequestInvalidError(errors)
  }

  private newWebhookSecret(): { plain: string; doc: WebhookSecretDoc } {
    const plain = generateWebhookSecret()
    return { plain, doc: { id: newId('whs'), sealed: this.box.seal(plain), createdAt: new Date(), expiresAt: null } }
  }

  async createSubscription(p: Principal, input: SubscriptionInput): Promise<SubscriptionCreated> {
    const partnerId = input.partnerId ?? p.organizationId
    if (partnerId === null)
      throw new RequestInvalidError([{ field: 'partnerId', message: 'is required with an admin key' }])
    if (!isAdmin(p) && partnerId !== p.organizationId)
      throw new RequestInvalidError([{ field: 'partnerId', message: `no such organization ${partnerId}` }])
    const owner = await this.cols.organizations.findOne({ _id: partnerId })
    if (owner?.kind === 'publisher') {
      // a publisher subscribes to its own deals and leads only (docs/deals.md): its CRM behind a REST sink
      if (sinkPlugin(input.sink.type).partnerAccess) {
        const message = `a publisher's own subscription cannot use a ${input.sink.type} sink`
        throw new RequestInvalidError([{ field: 'sink.type', message }])
      }
    } else await requireOrganization(this.cols, partnerId, 'partner', 'partnerId')
    checkCollapse(input.eventTypes, input.deliveryPolicy)
    await this.checkAgainstGrants(partnerId, input)
    await this.checkSinkUrls(input.sink)
    const plugin = sinkPlugin(input.sink.type)
    const sealed = this.sealSink(input.sink)
    await this.checkSink(sealed, { eventTypes: input.eventTypes, sent: input.sink })
    const now = new Date()
    const secret = plugin.signingSecrets ? this.newWebhookSecret() : null
    const id = newId('sub')
    const sink = plugin.reserve
      ? await plugin.reserve(sealed, { id, partnerId, eventTypes: input.eventTypes }, this.sinkControl())
      : sealed
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
    const named = `partner ${partnerId} already has a subscription named ${input.name}`
    let inserted = false
    try {
      await uniqueWrite(this.cols.subscriptions.insertOne(doc), 'name', named)
      inserted = true
      // Its failures index since its creation: it then holds every failure of the subscription (its search reads
      // it). After the insert, so that a refused one (its name taken) writes none; before its connector, so that no
      // worker delivers any of its events before.
      await this.deliveries.failures.begin(id, now)
    } catch (err) {
      if (inserted) {
        await this.cols.subscriptions.deleteOne({ _id: id })
        await this.deliveries.failures.end(id)
      }
      if (plugin.reserve) await plugin.release?.(id, this.sinkControl())
      throw err
    }
    await this.ensureConnector(doc)
    if (plugin.partnerAccess) await this.accessChanged(partnerId)
    return { subscription: doc, webhookSecret: secret?.plain ?? null }
  }

  async updateSubscription(p: Principal, id: string, patch: SubscriptionPatch): Promise<SubscriptionCreated> {
    const sub = await this.getSubscription(p, id)
    canChangeSubscription(p, sub)
    const merged = {
      eventTypes: patch.eventTypes ?? sub.eventTypes,
      filter: 'filter' in patch ? patch.filter : filterOf(sub.filter),
      fields: 'fields' in patch ? patch.fields : sub.fields,
      schemaVersions: patch.schemaVersions ?? pinsOf(sub),
    }
    checkCollapse(merged.eventTypes, { ...ownDeliveryPolicy(sub), ...patch.deliveryPolicy })
    await this.checkAgainstGrants(sub.partnerId, merged)
    if (patch.sink) await this.checkSinkUrls(patch.sink)
    if (patch.sink && patch.sink.type !== sub.sink.type) {
      const fixed = [sub.sink.type, patch.sink.type].find((t) => sinkPlugin(t).fixed)
      if (fixed)
        throw new RequestInvalidError([
          {
            field: 'sink.type',
            message: `a subscription cannot change to or from a ${fixed} sink; create a new subscription`,
          },
        ])
    }
    // a fixed sink type keeps its stored config (its validate refuses what a request would change)
    const sealedSink = patch.sink
      ? sinkPlugin(patch.sink.type).fixed
        ? sub.sink
        : this.sealSink(patch.sink, sub.sink)
      : undefined
    await this.checkSink(sealedSink ?? sub.sink, {
      eventTypes: merged.eventTypes,
      sent: patch.sink,
      previous: { sink: sub.sink, eventTypes: sub.eventTypes },
    })
    const set: Partial<SubscriptionDoc> = {
      updatedAt: new Date(),
      eventTypes: merged.eventTypes,
      schemaVersions: encodePins(merged.schemaVersions),
    }
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
      if (
        sinkPlugin(patch.sink.type).signingSecrets &&
        !sub.webhookSecrets.some((s) => s.expiresAt === null || s.expiresAt > now)
      ) {
        const secret = this.newWebhookSecret()
        set.webhookSecrets = [secret.doc]
        webhookSecret = secret.plain
      }
    }
    const updated = await uniqueWrite(
      this.cols.subscriptions.findOneAndUpdate(
        { _id: id, version: sub.version },
        { $set: set, ...(Object.keys(unset).length > 0 ? { $unset: unset } : {}), $inc: { version: 1 } },
        { returnDocument: 'after' },
      ),
      'name',
      `partner ${sub.partnerId} already has a subscription named ${patch.name}`,
    )
    if (!updated) throw new ConflictError('the subscription changed concurrently; read it again and retry')
    await this.touchConnector(id)
    if (sinkPlugin(updated.sink.type).partnerAccess) await this.accessChanged(updated.partnerId)
    return { subscription: updated, webhookSecret }
  }

  async deleteSubscription(p: Principal, id: string): Promise<void> {
    const sub = await this.getSubscription(p, id)
    canChangeSubscription(p, sub)
    // Its delivery log goes in the background (a scan of the log on FerretDB v1): recorded before anything is deleted.
    await this.logRemovals.request(id)
    // Connector first: a worker stops delivering before the subscription disappears.
    await this.cols.connectors.deleteOne({ _id: id })
    await this.connectorsChanged()
    await this.cols.subscriptions.deleteOne({ _id: id })
    await this.cols.connectorStatus.deleteOne({ _id: id })
    const plugin = sinkPlugin(sub.sink.type)
    const removedTopics = (await plugin.release?.(id, this.sinkControl())) ?? []
    if (plugin.partnerAccess) await this.accessChanged(sub.partnerId, removedTopics)
    // Its delivery log and failures index, which nothing reads any more, in the background (the answer does not wait
    // for it); the worker that held it removes what it wrote after this (control-loop.ts).
    void this.logRemovals.run()
  }

  /** New webhook secret; the current ones stay valid (and are signed with) for `overlapSeconds`. */
  async rotateWebhookSecret(
    p: Principal,
    id: string,
    overlapSeconds: number,
  ): Promise<{ subscription: SubscriptionDoc; webhookSecret: string }> {
    const sub = await this.getSubscription(p, id)
    canChangeSubscription(p, sub)
    if (!sinkPlugin(sub.sink.type).signingSecrets)
      throw new ConflictError('only webhook subscriptions have webhook secrets')
    const now = new Date()
    const kept = rotatedOut(sub.webhookSecrets, now, overlapSeconds)
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

  protected async ensureConnector(sub: SubscriptionDoc): Promise<ConnectorDoc> {
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
    await this.connectorsChanged()
    return doc!
  }

  /** A subscription change a worker must pick up: bump the generation. */
  private async touchConnector(id: string): Promise<void> {
    await this.cols.connectors.updateOne({ _id: id }, { $inc: { generation: 1 }, $set: { updatedAt: new Date() } })
    await this.connectorsChanged()
  }

  /**
   * After every write of a connector (created, changed, deleted): the sink workers read this one token,
   * not every connector, to know whether anything changed (connectors/sink/worker/control-loop.ts).
   */
  protected connectorsChanged(): Promise<void> {
    return signalChange(this.cols.changes, CONNECTORS_CHANGED)
  }
}

/**
 * A backlog collapses to the latest record of each key only on state topics (compacted: a record
 * replaces its key's earlier ones); on an event topic (deals) every record is a step of its own.
 */
function checkCollapse(eventTypes: readonly string[], policy: Partial<DeliveryPolicy> | undefined): void {
  if (policy?.collapseBacklog !== true) return
  const events = eventTypes.filter((t) =>
    ALL_TOPICS.some((s) => (s.name === t || s.eventTypes.includes(t)) && s.cleanupPolicy !== 'compact'),
  )
  if (events.length > 0)
    throw new RequestInvalidError([
      {
        field: 'deliveryPolicy.collapseBacklog',
        message:
          `only for state topics: ${events.join(', ')} ${events.length === 1 ? 'is an event' : 'are events'} ` +
          'of an event topic, where every record counts',
      },
    ])
}
