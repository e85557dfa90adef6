/**
 * Reads of the delivery log by `_id` alone, the one filter FerretDB v1 answers from an index (any other,
 * `$in` included, reads every document of the collection: 25 s for 100,000 deliveries), and what the
 * failures index (delivery-failures.ts) names for a subscription when it holds the subscription's whole
 * life. The delivery log's search of a failure status, its retry of every dead letter and the worker
 * performing that retry read through these instead of filtering the collection (control-plane/deliveries.ts).
 */
import type { Collection } from 'mongodb'
import type { Collections } from './store.ts'
import { holdsWholeLife, type DeliveryFailures, type FailureStatus } from './delivery-failures.ts'
import type { DeliveryDoc } from './types.ts'

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
