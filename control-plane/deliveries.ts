/**
 * The delivery log: one document per (subscription, event), written by the sink runtime after every
 * attempt, read and searched through the API. Retry requests are recorded here for the runtime to
 * pick up (the API never delivers anything itself).
 */
import type { Filter } from 'mongodb'
import type { Collections, Page, PageRequest } from './store.ts'
import { idAtTime, newId, page } from './store.ts'
import type { DeadLetterRecord, DeliveryAttempt, DeliveryDoc, DeliveryStatus, RetryRequestDoc } from './types.ts'

/** Kept per delivery document (the oldest are dropped). */
export const MAX_ATTEMPTS_KEPT = 20
const EXCERPT_BYTES = 1024

export interface AttemptRecord {
  subscriptionId: string
  partnerId: string
  eventId: string
  eventType: string
  key: string
  source?: { topic: string; partition: number; offset: string } | null
  attempt: Omit<DeliveryAttempt, 'responseExcerpt'> & { responseExcerpt?: string | null }
  /** The status after this attempt. */
  status: DeliveryStatus
  deadReason?: string | null
}

export interface DeliverySearch {
  subscriptionId: string
  eventId?: string | undefined
  key?: string | undefined
  status?: DeliveryStatus | undefined
  since?: Date | undefined
  until?: Date | undefined
}

export class DeliveryLog {
  constructor(private readonly cols: Collections) {}

  /** Idempotent per (subscription, event): upserts the document and appends the attempt. */
  async recordAttempt(r: AttemptRecord): Promise<void> {
    const now = new Date()
    const excerpt = r.attempt.responseExcerpt == null ? null : Buffer.from(r.attempt.responseExcerpt).subarray(0, EXCERPT_BYTES).toString('utf8')
    const set: Partial<DeliveryDoc> = { status: r.status, updatedAt: now }
    if (r.status === 'delivered') set.deliveredAt = now
    if (r.status === 'dead') {
      set.deadAt = now
      set.deadReason = r.deadReason ?? null
    }
    if (r.status === 'pending' || r.status === 'retrying') set.retryRequestedAt = null
    const setOnInsert: Partial<DeliveryDoc> = {
      _id: newId('dlv'),
      partnerId: r.partnerId,
      eventType: r.eventType,
      key: r.key,
      source: r.source ?? null,
      createdAt: now,
    }
    for (const k of ['deliveredAt', 'deadAt', 'deadReason', 'retryRequestedAt'] as const) if (!(k in set)) (setOnInsert as Record<string, unknown>)[k] = null
    await this.cols.deliveries.updateOne(
      { subscriptionId: r.subscriptionId, eventId: r.eventId },
      {
        $set: set,
        $setOnInsert: setOnInsert,
        $inc: { attemptCount: 1 },
        $push: { attempts: { $each: [{ ...r.attempt, responseExcerpt: excerpt }], $slice: -MAX_ATTEMPTS_KEPT } },
      },
      { upsert: true },
    )
  }

  /**
   * The delivery went dead (exhausted, rejected, or undecodable): status, reason and the dead letter
   * itself, without adding an attempt (a poison record never had one). Idempotent.
   */
  async markDead(r: { subscriptionId: string; partnerId: string; eventId: string; eventType: string; key: string; reason: string; source: { topic: string; partition: number; offset: string } | null; deadLetter: DeadLetterRecord }): Promise<void> {
    const now = new Date()
    await this.cols.deliveries.updateOne(
      { subscriptionId: r.subscriptionId, eventId: r.eventId },
      {
        $set: { status: 'dead', deadAt: now, deadReason: r.reason, deadLetter: r.deadLetter, updatedAt: now, retryRequestedAt: null },
        $setOnInsert: { _id: newId('dlv'), partnerId: r.partnerId, eventType: r.eventType, key: r.key, source: r.source, createdAt: now, deliveredAt: null, attempts: [], attemptCount: 0 },
      },
      { upsert: true },
    )
  }

  search(q: DeliverySearch, req: PageRequest): Promise<Page<DeliveryDoc>> {
    const filter: Filter<DeliveryDoc> = { subscriptionId: q.subscriptionId }
    if (q.eventId !== undefined) filter.eventId = q.eventId
    if (q.key !== undefined) filter.key = q.key
    if (q.status !== undefined) filter.status = q.status
    const idRange: Record<string, string> = {}
    if (q.since) idRange.$gte = idAtTime('dlv', q.since)
    if (q.until) idRange.$lt = idAtTime('dlv', new Date(q.until.getTime() + 1000))
    if (Object.keys(idRange).length > 0) filter._id = idRange as never
    return page(this.cols.deliveries, filter, { ...req, descending: true })
  }

  get(subscriptionId: string, eventId: string): Promise<DeliveryDoc | null> {
    return this.cols.deliveries.findOne({ subscriptionId, eventId })
  }

  async requestRetry(input: { subscriptionId: string; partnerId: string; eventId: string | null; requestedBy: string }): Promise<RetryRequestDoc> {
    const now = new Date()
    const doc: RetryRequestDoc = {
      _id: newId('rtr'),
      subscriptionId: input.subscriptionId,
      partnerId: input.partnerId,
      kind: input.eventId === null ? 'dead-letters' : 'event',
      eventId: input.eventId,
      status: 'pending',
      requestedAt: now,
      requestedBy: input.requestedBy,
      completedAt: null,
    }
    await this.cols.retryRequests.insertOne(doc)
    if (input.eventId !== null) {
      await this.cols.deliveries.updateOne({ subscriptionId: input.subscriptionId, eventId: input.eventId }, { $set: { retryRequestedAt: now } })
    } else {
      await this.cols.deliveries.updateMany({ subscriptionId: input.subscriptionId, status: 'dead' }, { $set: { retryRequestedAt: now } })
    }
    return doc
  }

  /** For the runtime: the oldest pending retry requests. */
  pendingRetryRequests(limit = 100): Promise<RetryRequestDoc[]> {
    return this.cols.retryRequests.find({ status: 'pending' }).sort({ _id: 1 }).limit(limit).toArray()
  }

  async completeRetryRequest(id: string): Promise<void> {
    await this.cols.retryRequests.updateOne({ _id: id }, { $set: { status: 'done', completedAt: new Date() } })
  }
}
