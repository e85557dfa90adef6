/**
 * Reads of the delivery log by `_id` alone, the one filter FerretDB v1 answers from an index (any other,
 * `$in` included, reads every document of the collection: 25 s for 100,000 deliveries), and what the
 * failures index (delivery-failures.ts) names for a subscription when it holds the subscription's whole
 * life. The delivery log's search (`searchDeliveries`), its retry of every dead letter and the worker
 * performing that retry (`retryablePage`) read through these instead of filtering the collection when they
 * can (control-plane/deliveries.ts writes the log).
 */
import { createHash } from 'node:crypto'
import type { Collection, Filter } from 'mongodb'
import type { Collections, Page, PageRequest } from './store.ts'
import { page, pageFrom, sortedAfter } from './store.ts'
import { holdsWholeLife, isFailureStatus, type DeliveryFailures, type FailureStatus } from './delivery-failures.ts'
import type { DeliveryDoc, DeliveryStatus } from './types.ts'

/** What the reads of the delivery log use: the log itself, and the subscriptions' creation times. */
export type DeliveryReadCols = Pick<Collections, 'deliveries' | 'subscriptions'>

/**
 * The `_id` of the delivery document of (subscription, event): derived from the pair (96 bits of its
 * SHA-256, `dlv_` + 24 hex digits like every other id of the API), so every writer, in any process,
 * writes it by `_id` alone without looking anything up. On FerretDB v1 that matters: it pushes down a
 * filter of exactly `{_id: value}` and nothing else (a filter on other fields, or on `_id` and another
 * field, scans the whole collection, and the delivery log is the biggest one).
 */
export function deliveryId(subscriptionId: string, eventId: string): string {
  return `dlv_${createHash('sha256')
    .update(JSON.stringify([subscriptionId, eventId]))
    .digest('hex')
    .slice(0, 24)}`
}

export interface DeliverySearch {
  subscriptionId: string
  /** Only the deliveries of this publisher's events (a publisher's view). */
  publisherId?: string | undefined
  eventId?: string | undefined
  key?: string | undefined
  /** Only deliveries of this event type (the console's filter). */
  eventType?: string | undefined
  status?: DeliveryStatus | undefined
  since?: Date | undefined
  until?: Date | undefined
}

/** Whether a delivery document is one the search `q` finds (what its filter asks, in memory). */
export function matchesSearch(d: DeliveryDoc, q: DeliverySearch): boolean {
  return (
    d.subscriptionId === q.subscriptionId &&
    (q.publisherId === undefined || d.publisherId === q.publisherId) &&
    (q.eventId === undefined || d.eventId === q.eventId) &&
    (q.key === undefined || d.key === q.key) &&
    (q.status === undefined || d.status === q.status) &&
    (q.eventType === undefined || d.eventType === q.eventType) &&
    (!q.since || d.createdAt >= q.since) &&
    (!q.until || d.createdAt <= q.until)
  )
}

/** The fields a delivery document or attempt may leave out when null (the batch insert does). */
const NULLABLE = ['source', 'deliveredAt', 'deadAt', 'deadReason', 'retryRequestedAt'] as const
const NULLABLE_ATTEMPT = ['statusCode', 'error', 'responseExcerpt'] as const

/** A stored delivery document as DeliveryDoc: the fields left out when null are null again. */
export function completeDelivery(doc: DeliveryDoc): DeliveryDoc {
  for (const k of NULLABLE) (doc as unknown as Record<string, unknown>)[k] ??= null
  for (const a of doc.attempts ?? [])
    for (const k of NULLABLE_ATTEMPT) (a as unknown as Record<string, unknown>)[k] ??= null
  return doc
}

/** Deliveries read (or written) by `_id` at once. */
export const BY_ID_AT_ONCE = 64

/**
 * The delivery documents of these `_id`s, in that order (those that exist), each read by its `_id`
 * alone, BY_ID_AT_ONCE at a time.
 */
export async function byIds(
  deliveries: Collection<DeliveryDoc>,
  ids: readonly string[],
  projection?: Record<string, 1>,
): Promise<DeliveryDoc[]> {
  const out: DeliveryDoc[] = []
  for (let i = 0; i < ids.length; i += BY_ID_AT_ONCE) {
    const read = ids
      .slice(i, i + BY_ID_AT_ONCE)
      .map((_id) => deliveries.findOne({ _id }, projection ? { projection } : {}))
    for (const d of await Promise.all(read)) if (d) out.push(d)
  }
  return out
}

/**
 * The documents of `ordered` that `match`, in that order, at most `want`: read by `_id` as many at a time
 * as are still wanted, until `want` match or none is left (an entry of the failures index whose delivery
 * moved on, retried and delivered since, no longer matches).
 */
export async function firstMatching(
  deliveries: Collection<DeliveryDoc>,
  ordered: ReadonlyArray<{ _id: string }>,
  want: number,
  match: (d: DeliveryDoc) => boolean,
  projection?: Record<string, 1>,
): Promise<DeliveryDoc[]> {
  const found: DeliveryDoc[] = []
  for (let i = 0; i < ordered.length && found.length < want;) {
    const next = ordered.slice(i, i + want - found.length)
    i += next.length
    const ids = next.map((c) => c._id)
    for (const d of await byIds(deliveries, ids, projection)) if (match(d)) found.push(d)
  }
  return found
}

/**
 * The deliveries the failures index names for (subscription, status), once each, with their creation
 * time (the entry's, else the document's: entries noted by an earlier version lack it), when the index
 * holds the subscription's whole life (holdsWholeLife: its head's `since` is not after the subscription's
 * creation). Null when the index may miss some (failures from before it existed) or the subscription is
 * gone: the caller filters the collection instead.
 */
export async function indexedFailures(
  cols: Pick<Collections, 'deliveries' | 'subscriptions'>,
  failures: DeliveryFailures,
  subscriptionId: string,
  status: FailureStatus,
): Promise<Array<{ _id: string; createdAt: Date }> | null> {
  const [head, sub] = await Promise.all([
    failures.head(subscriptionId, status),
    cols.subscriptions.findOne({ _id: subscriptionId }, { projection: { createdAt: 1 } }),
  ])
  if (!head || !holdsWholeLife(head.since, sub?.createdAt)) return null
  const entries = await failures.all(subscriptionId, status, head.pages)
  const unknown = entries.filter((e) => !e.createdAt).map((e) => e.id)
  const created = new Map((await byIds(cols.deliveries, unknown, { createdAt: 1 })).map((d) => [d._id, d.createdAt]))
  return entries.flatMap((e) => {
    const createdAt = e.createdAt ?? created.get(e.id)
    return createdAt ? [{ _id: e.id, createdAt }] : []
  })
}

/**
 * The deliveries `q` finds, newest first (createdAt, then `_id`). A search of one event (`eventId`) reads its
 * delivery by `_id` (eventSearch); a search of a failure status reads the failures index when it holds the
 * subscription's whole life (indexedSearch); otherwise, a filter on the collection (on FerretDB v1 a scan of the
 * whole delivery log: 25 s for 100,000 deliveries). Every path answers the same items, order and cursors.
 */
export async function searchDeliveries(
  cols: DeliveryReadCols,
  failures: DeliveryFailures,
  q: DeliverySearch,
  req: PageRequest,
): Promise<Page<DeliveryDoc>> {
  const read = (await eventSearch(cols.deliveries, q, req)) ?? (await indexedSearch(cols, failures, q, req))
  if (read) return read
  const filter: Filter<DeliveryDoc> = { subscriptionId: q.subscriptionId }
  if (q.publisherId !== undefined) filter.publisherId = q.publisherId
  if (q.eventId !== undefined) filter.eventId = q.eventId
  if (q.key !== undefined) filter.key = q.key
  if (q.status !== undefined) filter.status = q.status
  if (q.eventType !== undefined) filter.eventType = q.eventType
  const created: Record<string, Date> = {}
  if (q.since) created.$gte = q.since
  if (q.until) created.$lte = q.until
  if (Object.keys(created).length > 0) filter.createdAt = created
  const found = await page(cols.deliveries, filter, { ...req, descending: true }, 'createdAt')
  return { ...found, items: found.items.map(completeDelivery) }
}

/**
 * The search of one event's delivery: an event has one delivery per subscription (the unique (subscriptionId,
 * eventId) index), under the `_id` derived from the pair (deliveryId), so that one document read by `_id` answers
 * it (kept when it matches the rest of `q`), whatever the subscription's size. Null when there is no document under
 * that `_id`: no delivery, or one an earlier version wrote under a random `_id`, which the other paths find.
 */
async function eventSearch(
  deliveries: Collection<DeliveryDoc>,
  q: DeliverySearch,
  req: PageRequest,
): Promise<Page<DeliveryDoc> | null> {
  if (q.eventId === undefined) return null
  const doc = await deliveries.findOne({ _id: deliveryId(q.subscriptionId, q.eventId) })
  if (!doc || doc.subscriptionId !== q.subscriptionId || doc.eventId !== q.eventId) return null
  const found = matchesSearch(doc, q) ? [completeDelivery(doc)] : []
  return pageFrom(sortedAfter(found, { ...req, descending: true }, 'createdAt'), req, 'createdAt')
}

/**
 * The search of a failure status through the failures index, by `_id` only: the deliveries the index
 * names (indexedFailures), ordered as the filter's are by their creation time, after the cursor; then
 * their documents in that order, a page's worth at a time, until a page and one more match `q` (a
 * delivery retried and delivered since no longer does). Same items, order and cursors as the filter's.
 * Null when the index may miss some.
 */
async function indexedSearch(
  cols: DeliveryReadCols,
  failures: DeliveryFailures,
  q: DeliverySearch,
  req: PageRequest,
): Promise<Page<DeliveryDoc> | null> {
  if (!isFailureStatus(q.status)) return null
  const failed = await indexedFailures(cols, failures, q.subscriptionId, q.status)
  if (!failed) return null
  const candidates = failed.filter((c) => (!q.since || c.createdAt >= q.since) && (!q.until || c.createdAt <= q.until))
  const ordered = sortedAfter(candidates, { ...req, descending: true }, 'createdAt')
  const found = await firstMatching(cols.deliveries, ordered, req.limit + 1, (d) => matchesSearch(d, q))
  return pageFrom(found.map(completeDelivery), req, 'createdAt')
}

/** Which deliveries a retry of every dead letter takes (retryablePage). */
export interface RetryableOptions {
  /**
   * Also the dead letters being delivered again (retrying, their dead letter stored): a retry cut off by a
   * restart takes up those its previous holder had started.
   */
  retrying?: boolean
  /** Only the fields that decide whether a delivery is taken, and its place (through the failures index). */
  minimal?: boolean
}

/** Whether a delivery is one a retry of every dead letter takes: dead (test events aside: no dead letter). */
function retryable(d: DeliveryDoc, o: RetryableOptions): boolean {
  return d.test !== true && (d.status === 'dead' || (o.retrying === true && d.status === 'retrying' && !!d.deadLetter))
}

/** `retryable` as a filter of the collection. */
export function retryableFilter(subscriptionId: string, o: RetryableOptions = {}): Filter<DeliveryDoc> {
  const dead: Filter<DeliveryDoc> = { subscriptionId, status: 'dead', test: { $ne: true } }
  if (!o.retrying) return dead
  const retrying = { subscriptionId, status: 'retrying', test: { $ne: true }, deadLetter: { $ne: null } }
  return { $or: [dead, retrying] } as Filter<DeliveryDoc>
}

/**
 * A page of what a retry of every dead letter of the subscription applies to, oldest first (createdAt, then `_id`:
 * the order the deliveries were inserted in, but for those created in the same millisecond), after `req.cursor`,
 * at most `req.limit` (Infinity: all), and where the next page starts. Through the failures index when it holds the
 * subscription's whole life (indexedRetryable); otherwise the filter on the collection (on FerretDB v1 a scan of the
 * whole delivery log, each page).
 */
export async function retryablePage(
  cols: DeliveryReadCols,
  failures: DeliveryFailures,
  subscriptionId: string,
  req: PageRequest,
  o: RetryableOptions = {},
): Promise<Page<DeliveryDoc>> {
  return (
    (await indexedRetryable(cols, failures, subscriptionId, req, o)) ??
    page(cols.deliveries, retryableFilter(subscriptionId, o), { ...req, descending: false }, 'createdAt')
  )
}

/** retryablePage through the failures index, read by `_id` (null: the index may miss some). */
export async function indexedRetryable(
  cols: DeliveryReadCols,
  failures: DeliveryFailures,
  subscriptionId: string,
  req: PageRequest,
  o: RetryableOptions = {},
): Promise<Page<DeliveryDoc> | null> {
  const failed = await indexedFailures(cols, failures, subscriptionId, 'dead')
  if (!failed) return null
  const ordered = sortedAfter(failed, { ...req, descending: false }, 'createdAt')
  const projection: Record<string, 1> | undefined = o.minimal
    ? { subscriptionId: 1, status: 1, test: 1, createdAt: 1, ...(o.retrying ? { deadLetter: 1 as const } : {}) }
    : undefined
  const match = (d: DeliveryDoc) => d.subscriptionId === subscriptionId && retryable(d, o)
  const found = await firstMatching(cols.deliveries, ordered, req.limit + 1, match, projection)
  return pageFrom(found, req, 'createdAt')
}
