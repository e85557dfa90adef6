/**
 * The control plane's MongoDB collections, their indexes and cursor pagination.
 *
 * Every list query the API runs is declared in QUERY_SHAPES (equality fields, then `_id` as the sort
 * and cursor); a unit test checks each is served by an index prefix. Uniqueness lives in unique
 * indexes (the store has no transactions: writes are single-document and idempotent).
 */
import {
  ObjectId,
  type AnyBulkWriteOperation,
  type Collection,
  type Db,
  type Document,
  type Filter,
  type IndexDescription,
  type OptionalUnlessRequiredId,
  type WithoutId,
} from 'mongodb'
import { Limiter } from '../common/limiter.ts'
import { isDuplicateKey } from '../common/store-errors.ts'
import type {
  ApiKeyDoc,
  ChangeSignalDoc,
  ConnectorDoc,
  ConnectorStatusDoc,
  DeliveryDoc,
  GrantDoc,
  IdempotencyDoc,
  LogRemovalDoc,
  OrganizationDoc,
  OutboxRelayDoc,
  PartnerKafkaUserDoc,
  PartnerTopicDoc,
  RetryRequestDoc,
  SourceDoc,
  SourceStatusDoc,
  SubscriptionDoc,
} from './types.ts'
import { RequestInvalidError } from './errors.ts'
import type { FailureIndexDoc } from './delivery-failures.ts'
import type {
  DealClaimDoc,
  DealDoc,
  DealTransitionDoc,
  InboundConnectorDoc,
  LeadDoc,
  LeadTransitionDoc,
  PendingEventDoc,
} from './deals/types.ts'

export interface Collections {
  organizations: Collection<OrganizationDoc>
  apiKeys: Collection<ApiKeyDoc>
  grants: Collection<GrantDoc>
  subscriptions: Collection<SubscriptionDoc>
  connectors: Collection<ConnectorDoc>
  /**
   * Written only by the worker that holds the connector (a document of its own: FerretDB v1 does not isolate concurrent
   * updates of one document, so the API's desired-state writes and a worker's status writes never touch the same one).
   */
  connectorStatus: Collection<ConnectorStatusDoc>
  /** Change signals (`signalChange`): one small document per kind of change, read by `_id`. */
  changes: Collection<ChangeSignalDoc>
  deliveries: Collection<DeliveryDoc>
  /** Failed deliveries per subscription and status, read by `_id` only (control-plane/delivery-failures.ts). */
  deliveryFailures: Collection<FailureIndexDoc>
  retryRequests: Collection<RetryRequestDoc>
  /** Deleted subscriptions whose delivery log is still to be removed (control-plane/log-removals.ts). */
  logRemovals: Collection<LogRemovalDoc>
  idempotency: Collection<IdempotencyDoc>
  /** Written only by the outbox relay (what it produced per organization); the API reads it to prune outboxes. */
  outboxRelay: Collection<OutboxRelayDoc>
  /** Source connectors (desired state and config, written by the API and the config upsert). */
  sources: Collection<SourceDoc>
  /** Written only by the worker holding the source's lease (see connectorStatus). */
  sourceStatus: Collection<SourceStatusDoc>
  /** Partner topics of kafka-topic subscriptions (control-plane/partner-kafka.ts). */
  partnerTopics: Collection<PartnerTopicDoc>
  /** Partners' Kafka (SCRAM) users. */
  partnerKafkaUsers: Collection<PartnerKafkaUserDoc>
  /** Deal registrations (control-plane/deals/: written only through their transitions). */
  deals: Collection<DealDoc>
  /** Every step of every deal, `_id` `<dealId>:<version>`: the unique `_id` decides between concurrent steps. */
  dealTransitions: Collection<DealTransitionDoc>
  /** One document per approved (manufacturer, customer, product): the unique `_id` allows one approval. */
  dealClaims: Collection<DealClaimDoc>
  leads: Collection<LeadDoc>
  leadTransitions: Collection<LeadTransitionDoc>
  /** Events of deal and lead steps the relay has not had acknowledged yet (deleted once it has). */
  dealOutbox: Collection<PendingEventDoc>
  /** Message ids of CRM calls to inbound connectors already acted on (replays change nothing twice). */
  inboundMessages: Collection<IdempotencyDoc>
  /** Publishers' inbound connectors (their CRM's decisions on deals, control-plane/deals/inbound.ts). */
  inboundConnectors: Collection<InboundConnectorDoc>
}

export const COLLECTION_NAMES: Record<keyof Collections, string> = {
  organizations: 'organizations',
  apiKeys: 'api_keys',
  grants: 'grants',
  subscriptions: 'subscriptions',
  connectors: 'connectors',
  connectorStatus: 'connector_status',
  changes: 'changes',
  deliveries: 'deliveries',
  deliveryFailures: 'delivery_failures',
  retryRequests: 'retry_requests',
  logRemovals: 'log_removals',
  idempotency: 'idempotency',
  outboxRelay: 'outbox_relay',
  sources: 'sources',
  sourceStatus: 'source_status',
  partnerTopics: 'partner_topics',
  partnerKafkaUsers: 'partner_kafka_users',
  deals: 'deals',
  dealTransitions: 'deal_transitions',
  dealClaims: 'deal_claims',
  leads: 'leads',
  leadTransitions: 'lead_transitions',
  dealOutbox: 'deal_outbox',
  inboundMessages: 'inbound_messages',
  inboundConnectors: 'inbound_connectors',
}

export const INDEXES: Record<keyof Collections, IndexDescription[]> = {
  organizations: [
    { key: { slug: 1 }, name: 'slug_unique', unique: true },
    { key: { kind: 1, _id: 1 }, name: 'kind_id' },
    { key: { outboxAt: 1, _id: 1 }, name: 'outbox_at_id' },
  ],
  apiKeys: [
    { key: { prefix: 1 }, name: 'prefix_unique', unique: true },
    { key: { organizationId: 1, _id: 1 }, name: 'org_id' },
  ],
  grants: [
    { key: { publisherId: 1, partnerId: 1 }, name: 'publisher_partner_unique', unique: true },
    { key: { partnerId: 1, _id: 1 }, name: 'partner_id' },
    { key: { publisherId: 1, _id: 1 }, name: 'publisher_id' },
  ],
  subscriptions: [
    { key: { partnerId: 1, name: 1 }, name: 'partner_name_unique', unique: true },
    { key: { partnerId: 1, _id: 1 }, name: 'partner_id' },
    { key: { eventTypes: 1, _id: 1 }, name: 'event_types_id' },
    { key: { 'webhookSecrets.expiresAt': 1 }, name: 'webhook_secrets_expires_at' },
  ],
  connectors: [
    { key: { partnerId: 1, _id: 1 }, name: 'partner_id' },
    { key: { updatedAt: 1 }, name: 'updated_at' },
  ],
  connectorStatus: [],
  changes: [],
  deliveries: [
    { key: { subscriptionId: 1, eventId: 1 }, name: 'subscription_event_unique', unique: true },
    { key: { subscriptionId: 1, createdAt: 1, _id: 1 }, name: 'subscription_created' },
    { key: { subscriptionId: 1, status: 1, createdAt: 1, _id: 1 }, name: 'subscription_status_created' },
    { key: { subscriptionId: 1, key: 1, createdAt: 1, _id: 1 }, name: 'subscription_key_created' },
  ],
  deliveryFailures: [],
  retryRequests: [
    { key: { status: 1, _id: 1 }, name: 'status_id' },
    { key: { subscriptionId: 1, _id: 1 }, name: 'subscription_id' },
    { key: { subscriptionId: 1, status: 1, _id: 1 }, name: 'subscription_status_id' },
  ],
  logRemovals: [],
  idempotency: [{ key: { expiresAt: 1 }, name: 'expires_at' }],
  outboxRelay: [],
  sources: [
    { key: { name: 1 }, name: 'name_unique', unique: true },
    { key: { publisherId: 1, _id: 1 }, name: 'publisher_id' },
  ],
  sourceStatus: [],
  partnerTopics: [{ key: { partnerId: 1, _id: 1 }, name: 'partner_id' }],
  partnerKafkaUsers: [{ key: { username: 1 }, name: 'username_unique', unique: true }],
  deals: [
    { key: { partnerId: 1, _id: 1 }, name: 'partner_id' },
    { key: { manufacturerId: 1, _id: 1 }, name: 'manufacturer_id' },
    { key: { manufacturerId: 1, customerKey: 1, _id: 1 }, name: 'manufacturer_customer_id' },
    { key: { state: 1, protectionExpiresAt: 1 }, name: 'state_protection' },
  ],
  dealTransitions: [{ key: { dealId: 1, version: 1 }, name: 'deal_version' }],
  dealClaims: [{ key: { dealId: 1, _id: 1 }, name: 'deal_id' }],
  leads: [
    { key: { partnerId: 1, _id: 1 }, name: 'partner_id' },
    { key: { manufacturerId: 1, _id: 1 }, name: 'manufacturer_id' },
    { key: { state: 1, acceptBy: 1 }, name: 'state_accept_by' },
  ],
  leadTransitions: [],
  dealOutbox: [{ key: { outboxAt: 1, _id: 1 }, name: 'outbox_at_id' }],
  inboundMessages: [{ key: { expiresAt: 1 }, name: 'expires_at' }],
  inboundConnectors: [{ key: { publisherId: 1, _id: 1 }, name: 'publisher_id' }],
}

/** Every list/poll query: its equality (or $in) fields; `_id` (or `sort`) orders and pages it. */
export interface QueryShape {
  collection: keyof Collections
  equality: string[]
  sort?: string
}

export const QUERY_SHAPES: Record<string, QueryShape> = {
  'organizations.all': { collection: 'organizations', equality: [] },
  'organizations.byKind': { collection: 'organizations', equality: ['kind'] },
  'organizations.byIds': { collection: 'organizations', equality: ['_id'] },
  'organizations.outboxSince': { collection: 'organizations', equality: [], sort: 'outboxAt' },
  'outboxRelay.byIds': { collection: 'outboxRelay', equality: ['_id'] },
  'apiKeys.all': { collection: 'apiKeys', equality: [] },
  'apiKeys.byOrganization': { collection: 'apiKeys', equality: ['organizationId'] },
  'apiKeys.byPrefix': { collection: 'apiKeys', equality: ['prefix'] },
  'grants.all': { collection: 'grants', equality: [] },
  'grants.byPartner': { collection: 'grants', equality: ['partnerId'] },
  'grants.byPublisher': { collection: 'grants', equality: ['publisherId'] },
  'grants.byPublisherPartner': { collection: 'grants', equality: ['publisherId', 'partnerId'] },
  'subscriptions.all': { collection: 'subscriptions', equality: [] },
  'subscriptions.byPartner': { collection: 'subscriptions', equality: ['partnerId'] },
  'subscriptions.byEventType': { collection: 'subscriptions', equality: ['eventTypes'] },
  'subscriptions.expiredWebhookSecrets': {
    collection: 'subscriptions',
    equality: [],
    sort: 'webhookSecrets.expiresAt',
  },
  'connectors.all': { collection: 'connectors', equality: [] },
  'connectors.byPartner': { collection: 'connectors', equality: ['partnerId'] },
  'connectors.changedSince': { collection: 'connectors', equality: [], sort: 'updatedAt' },
  'connectorStatus.byIds': { collection: 'connectorStatus', equality: ['_id'] },
  'deliveries.bySubscription': { collection: 'deliveries', equality: ['subscriptionId'], sort: 'createdAt' },
  'deliveries.byStatus': { collection: 'deliveries', equality: ['subscriptionId', 'status'], sort: 'createdAt' },
  'deliveries.byKey': { collection: 'deliveries', equality: ['subscriptionId', 'key'], sort: 'createdAt' },
  'deliveries.byEvent': { collection: 'deliveries', equality: ['subscriptionId', 'eventId'] },
  'deliveryFailures.byIds': { collection: 'deliveryFailures', equality: ['_id'] },
  'retryRequests.pending': { collection: 'retryRequests', equality: ['status'] },
  'retryRequests.bySubscription': { collection: 'retryRequests', equality: ['subscriptionId'] },
  'retryRequests.pendingBySubscription': { collection: 'retryRequests', equality: ['subscriptionId', 'status'] },
  'idempotency.expired': { collection: 'idempotency', equality: [], sort: 'expiresAt' },
  'sources.all': { collection: 'sources', equality: [] },
  'sources.byPublisher': { collection: 'sources', equality: ['publisherId'] },
  'sources.byName': { collection: 'sources', equality: ['name'] },
  'sourceStatus.byIds': { collection: 'sourceStatus', equality: ['_id'] },
  'partnerTopics.all': { collection: 'partnerTopics', equality: [] },
  'partnerTopics.byPartner': { collection: 'partnerTopics', equality: ['partnerId'] },
  'partnerKafkaUsers.all': { collection: 'partnerKafkaUsers', equality: [] },
  'partnerKafkaUsers.byUsername': { collection: 'partnerKafkaUsers', equality: ['username'] },
  'deals.all': { collection: 'deals', equality: [] },
  'deals.byPartner': { collection: 'deals', equality: ['partnerId'] },
  'deals.byManufacturer': { collection: 'deals', equality: ['manufacturerId'] },
  'deals.byCustomer': { collection: 'deals', equality: ['manufacturerId', 'customerKey'] },
  'deals.byStateExpiry': { collection: 'deals', equality: ['state'], sort: 'protectionExpiresAt' },
  'dealTransitions.byDeal': { collection: 'dealTransitions', equality: ['dealId'], sort: 'version' },
  'dealClaims.byDeal': { collection: 'dealClaims', equality: ['dealId'] },
  'leads.all': { collection: 'leads', equality: [] },
  'leads.byPartner': { collection: 'leads', equality: ['partnerId'] },
  'leads.byManufacturer': { collection: 'leads', equality: ['manufacturerId'] },
  'leads.byStateDeadline': { collection: 'leads', equality: ['state'], sort: 'acceptBy' },
  'dealOutbox.pending': { collection: 'dealOutbox', equality: [], sort: 'outboxAt' },
  'inboundMessages.expired': { collection: 'inboundMessages', equality: [], sort: 'expiresAt' },
  'inboundConnectors.all': { collection: 'inboundConnectors', equality: [] },
  'inboundConnectors.byPublisher': { collection: 'inboundConnectors', equality: ['publisherId'] },
}

export function collections(db: Db): Collections {
  const out = {} as Record<keyof Collections, Collection<never>>
  for (const [k, name] of Object.entries(COLLECTION_NAMES) as Array<[keyof Collections, string]>)
    out[k] = db.collection(name)
  return out as unknown as Collections
}

/**
 * Creates every missing index (idempotent). One createIndexes command per index, and only for those
 * not listed yet: FerretDB 1.24 drops the connection when one command re-creates several existing
 * indexes of a collection that holds documents.
 *
 * On FerretDB v1 (the local stack) only the unique indexes: its SQLite backend reads through the _id
 * index alone (it pushes down `_id` equality, nothing else), so a non-unique index there serves no
 * query and only costs every write (the delivery log inserted 28 % more documents per second without
 * its three). Real MongoDB gets them all.
 */
export async function ensureIndexes(db: Db): Promise<void> {
  const cols = collections(db)
  const ferret = await isFerretDb(db)
  for (const [k, indexes] of Object.entries(INDEXES) as Array<[keyof Collections, IndexDescription[]]>) {
    const col = cols[k] as unknown as Collection<Document>
    const existing = new Set(
      (
        await col
          .listIndexes()
          .toArray()
          .catch(() => [] as Document[])
      ).map((i) => i.name as string),
    )
    for (const index of indexes)
      if (!existing.has(index.name!) && (index.unique || !ferret)) await col.createIndexes([index])
  }
}

/** Whether the server is FerretDB (its buildInfo names its version). */
export async function isFerretDb(db: Db): Promise<boolean> {
  const info = await db.command({ buildInfo: 1 }).catch(() => null)
  return info?.ferretdbVersion !== undefined
}

/**
 * Gives the change signal `id` a new token, after a write of that kind (so that a poller that sees the new
 * token reads the write). Writers may race: the last token stays, and it is new either way.
 */
export async function signalChange(col: Collection<ChangeSignalDoc>, id: string): Promise<void> {
  const set = { $set: { token: newId('chg'), at: new Date() } }
  try {
    await col.updateOne({ _id: id }, set, { upsert: true })
  } catch (err) {
    // two first writers both inserted: the other one's insert won, update it
    if (!isDuplicateKey(err)) throw err
    await col.updateOne({ _id: id }, set)
  }
}

/** The change signal's current token (null: never signalled). */
export async function changeToken(col: Collection<ChangeSignalDoc>, id: string): Promise<string | null> {
  return (await col.findOne({ _id: id }))?.token ?? null
}

/** Statements per bulk command, and bulk commands in flight per process (see `bulkWriteBounded`). */
export const BULK_CHUNK = 8
const bulkCommands = new Limiter(2)

/**
 * A bulk write of many documents as a few small commands, two at a time per process. FerretDB v1
 * (SQLite) keeps the read cursor of every update statement of a command open until the whole command
 * ends, each holding one of its 100 connections per database, and each write needs one more: a
 * command of about 100 replace/update statements on existing documents (or a few dozen such commands
 * at once) takes them all and waits for ever, and every later command on that database waits behind
 * it. Real MongoDB has no such limit; small commands cost it one round trip each. Unordered: a failed
 * statement does not stop the others; the first error is thrown once all ran.
 */
export async function bulkWriteBounded<T extends Document>(
  col: Collection<T>,
  ops: ReadonlyArray<AnyBulkWriteOperation<T>>,
): Promise<void> {
  let first: unknown
  for (let i = 0; i < ops.length; i += BULK_CHUNK) {
    const chunk = ops.slice(i, i + BULK_CHUNK)
    try {
      await bulkCommands.run(() => col.bulkWrite(chunk, { ordered: false }))
    } catch (err) {
      first ??= err
    }
  }
  if (first !== undefined) throw first
}

/** Documents per insert command of upsertMany, and per batch that findByIds reads. */
const INSERT_CHUNK = 1000

/**
 * Writes many whole documents, most of them new: one unordered insert, then a replace (bulkWriteBounded)
 * for those that already existed. On FerretDB v1 an insert of 10,000 documents takes about 0.7 s and
 * each replace about 2 ms (a transaction of its own), so a worker's first cursors and statuses of
 * 10,000 new subscriptions take a second instead of twenty.
 */
export async function upsertMany<T extends { _id: string }>(col: Collection<T>, docs: readonly T[]): Promise<void> {
  if (docs.length === 0) return
  const existed: T[] = []
  // in commands of INSERT_CHUNK: the driver encodes a command in one go (10,000 statuses: some 80 ms)
  for (let i = 0; i < docs.length; i += INSERT_CHUNK) {
    const chunk = docs.slice(i, i + INSERT_CHUNK)
    try {
      await col.insertMany(chunk as unknown as OptionalUnlessRequiredId<T>[], { ordered: false })
    } catch (err) {
      const writeErrors = (err as { writeErrors?: unknown }).writeErrors
      const errors = (Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : []) as Array<{
        index?: unknown
      }>
      if (errors.length === 0 || !errors.every((e) => isDuplicateKey(e) && typeof e.index === 'number')) throw err
      for (const e of errors) existed.push(chunk[e.index as number]!)
    }
  }
  await bulkWriteBounded(
    col,
    existed.map(({ _id, ...replacement }) => ({
      replaceOne: { filter: { _id } as Filter<T>, replacement: replacement as WithoutId<T>, upsert: true },
    })),
  )
}

/** Up to this many ids are looked up with `$in` (findByIds). */
const IN_MAX = 256

/**
 * The documents with these ids (any order). FerretDB v1 matches `{ _id: { $in: ids } }` by comparing every
 * document with every id (3.3 s for 10,000 ids over 10,000 connectors): more than IN_MAX ids are read as
 * the `_id` range they span (one pass over the collection there, an index range on MongoDB) and picked here.
 */
export async function findByIds<T extends { _id: string }>(
  col: Collection<T>,
  ids: readonly string[],
  projection?: Document,
): Promise<T[]> {
  if (ids.length === 0) return []
  // batches of INSERT_CHUNK: the driver decodes a batch in one go
  const options = { batchSize: INSERT_CHUNK, ...(projection ? { projection } : {}) }
  if (ids.length <= IN_MAX) return (await col.find({ _id: { $in: ids } } as Filter<T>, options).toArray()) as T[]
  let min = ids[0]!
  let max = ids[0]!
  for (const id of ids) {
    if (id < min) min = id
    if (id > max) max = id
  }
  const wanted = new Set(ids)
  const docs = (await col.find({ _id: { $gte: min, $lte: max } } as Filter<T>, options).toArray()) as T[]
  return docs.filter((d) => wanted.has(d._id))
}

/** `<prefix>_<ObjectId hex>`: unique and ordered by creation time, so `_id` doubles as sort key. */
export function newId(prefix: string): string {
  return `${prefix}_${new ObjectId().toHexString()}`
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

export interface PageRequest {
  limit: number
  cursor?: string | undefined
  /** Newest first (the delivery log) instead of oldest first. */
  descending?: boolean
}

/** A page's continuation: the last `_id` (and, for a list ordered by a date field, that field's value). */
export interface Cursor {
  after: string
  at?: Date
}

export function encodeCursor(lastId: string, at?: Date): string {
  const v = at === undefined ? { after: lastId } : { after: lastId, at: at.getTime() }
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url')
}

export function decodeCursor(cursor: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown; at?: unknown }
    if (typeof v.after === 'string' && v.after.length > 0 && v.after.length < 200) {
      if (v.at === undefined) return { after: v.after }
      if (typeof v.at === 'number' && Number.isSafeInteger(v.at) && !Number.isNaN(new Date(v.at).getTime()))
        return { after: v.after, at: new Date(v.at) }
    }
  } catch {
    /* fall through */
  }
  throw new RequestInvalidError([{ field: 'cursor', message: 'is not a cursor this API returned' }])
}

/** The cursor of a page request (null: the first page), refused when it is not one of this list's. */
function cursorOf(req: PageRequest, by: string | undefined): Cursor | null {
  if (req.cursor === undefined) return null
  const c = decodeCursor(req.cursor)
  if ((by === undefined) !== (c.at === undefined))
    throw new RequestInvalidError([{ field: 'cursor', message: 'is not a cursor of this list' }])
  return c
}

/** The page of `docs` (the next at most `limit + 1` of the list, in order): its items and where the next starts. */
export function pageFrom<T extends { _id: string }>(
  docs: T[],
  req: PageRequest,
  by: (keyof T & string) | undefined,
): Page<T> {
  const more = docs.length > req.limit
  const items = more ? docs.slice(0, req.limit) : docs
  const last = items[items.length - 1]
  return {
    items,
    nextCursor:
      more && last ? encodeCursor(last._id, by === undefined ? undefined : (last[by] as unknown as Date)) : null,
  }
}

/**
 * One page of `filter`, ordered by `_id` (or by the date field `by`, then `_id`), continuing after
 * the cursor.
 */
export async function page<T extends { _id: string }>(
  col: Collection<T>,
  filter: Filter<T>,
  req: PageRequest,
  by?: keyof T & string,
): Promise<Page<T>> {
  const dir = req.descending ? -1 : 1
  const op = dir === 1 ? '$gt' : '$lt'
  let query = filter
  const c = cursorOf(req, by)
  if (c) {
    const cond =
      by === undefined
        ? { _id: { [op]: c.after } }
        : { $or: [{ [by]: { [op]: c.at } }, { [by]: c.at, _id: { [op]: c.after } }] }
    query = { $and: [filter, cond as Filter<T>] } as Filter<T>
  }
  const docs = (await col
    .find(query)
    .sort(by === undefined ? { _id: dir } : { [by]: dir, _id: dir })
    .limit(req.limit + 1)
    .toArray()) as unknown as T[]
  return pageFrom(docs, req, by)
}

/**
 * The documents already read (every one matching the filter) that `page()` would read for `req`: after
 * its cursor, in its order, so a list may be read either way and page on with either's cursors.
 */
export function sortedAfter<T extends { _id: string }>(docs: T[], req: PageRequest, by?: keyof T & string): T[] {
  const dir = req.descending ? -1 : 1
  const at = (d: T) => (by === undefined ? 0 : (d[by] as unknown as Date).getTime())
  const order = (a: { _id: string }, atA: number, b: { _id: string }, atB: number) =>
    dir * (atA - atB || (a._id < b._id ? -1 : a._id > b._id ? 1 : 0))
  const c = cursorOf(req, by)
  const after = c ? docs.filter((d) => order(d, at(d), { _id: c.after }, c.at?.getTime() ?? 0) > 0) : [...docs]
  return after.sort((a, b) => order(a, at(a), b, at(b)))
}
