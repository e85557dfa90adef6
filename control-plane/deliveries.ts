/**
 * The delivery log: one document per (subscription, event), written by the sink runtime after every
 * attempt, read and searched through the API (newest first attempt first). Retry requests are recorded
 * here for the runtime to pick up (the API never delivers anything itself).
 */
import { MongoBulkWriteError, type UpdateFilter } from 'mongodb'
import { LruMap } from '../common/lru-map.ts'
import type { Collections, Page, PageRequest } from './store.ts'
import { newId } from './store.ts'
import { isDuplicateKey } from './errors.ts'
import { DeliveryFailures } from './delivery-failures.ts'
import {
  BY_ID_AT_ONCE,
  byIds,
  completeDelivery,
  deliveryId,
  indexedRetryable,
  retryableFilter,
  retryablePage,
  searchDeliveries,
  type DeliverySearch,
  type RetryableOptions,
} from './delivery-reads.ts'
import type {
  DeadLetterRecord,
  DeliveryAttempt,
  DeliveryDoc,
  DeliveryStatus,
  RetryProgress,
  RetryRequestDoc,
} from './types.ts'
import { uuidv7 } from '../schemas/headers.ts'

export { completeDelivery, deliveryId, matchesSearch, type DeliverySearch } from './delivery-reads.ts'

/** Kept per delivery document (the oldest are dropped). */
export const MAX_ATTEMPTS_KEPT = 20
const EXCERPT_BYTES = 1024

/** One attempt as the sink runtime reports it, with the fields of the delivery it belongs to. */
export interface AttemptRecord extends Pick<
  DeliveryDoc,
  'subscriptionId' | 'partnerId' | 'publisherId' | 'eventId' | 'eventType' | 'key'
> {
  source?: DeliveryDoc['source']
  attempt: Omit<DeliveryAttempt, 'responseExcerpt'> & { responseExcerpt?: string | null }
  /** The status after this attempt. */
  status: DeliveryStatus
  deadReason?: string | null
  /** A test event's attempt (DeliveryDoc.test). */
  test?: boolean
}

/**
 * First attempts inserted together: at most FIRST_BATCH per command. A batch is written at most
 * FIRST_WAIT_MS after its first failure or dead letter entered it (the dead-letter path waits for its
 * record), and at most DELIVERED_WAIT_MS after a successful delivery entered it: nothing waits for
 * those, and at 1,000 deliveries/s 50 ms batches of ~50 instead of 10 ms batches of ~10 cost FerretDB
 * about a third less CPU (the latency benchmark: 532-605 vs 801-924 ticks per run).
 */
const FIRST_BATCH = 250
const FIRST_WAIT_MS = 10
const DELIVERED_WAIT_MS = 50

interface FirstWrite {
  r: AttemptRecord
  /** `<subscriptionId>|<eventId>` */
  key: string
  doc: DeliveryDoc
  /** The attempt written the other way (the event is known after all). */
  upsert(): Promise<void>
  resolve(): void
  reject(err: unknown): void
  /** When its batch must be written at the latest (Date.now() time). */
  due: number
}

/** `x` without its null fields: FerretDB's cost of an insert grows with every value it stores. */
function withoutNulls<T extends object>(x: T): T {
  // a loop, not Object.entries/fromEntries: this runs for every logged attempt, and the pair arrays were about 2 % of
  // what a sink worker allocated at 1,000 deliveries/s (a sampling heap profile)
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(x)) {
    const v = (x as Record<string, unknown>)[k]
    if (v !== null) out[k] = v
  }
  return out as T
}

/** The writes whose index is (or is not) in `indexes`, in order. */
function partition<T>(list: T[], indexes: Set<number>): [outside: T[], inside: T[]] {
  const outside: T[] = []
  const inside: T[] = []
  list.forEach((x, i) => (indexes.has(i) ? inside : outside).push(x))
  return [outside, inside]
}

/** Indexes of the statements of a bulk insert that failed on a duplicate key (the others were written). */
function duplicateIndexes(err: unknown, count: number): Set<number> {
  if (!(err instanceof MongoBulkWriteError)) throw err
  const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]
  const dup = new Set<number>()
  for (const e of errors) {
    if (!isDuplicateKey(e)) throw err
    dup.add(e.index)
  }
  if (dup.size === 0 || dup.size > count) throw err
  return dup
}

export class DeliveryLog {
  /**
   * (subscription, event) written recently by this process -> its document's _id: the derived one, or
   * the one of a document written by an earlier version (a random id, found once by a scan).
   */
  readonly #ids = new LruMap<string, string>(20_000)
  /** `_id` -> createdAt of the failed deliveries this process inserted or noted recently (the index keeps it). */
  readonly #created = new LruMap<string, Date>(20_000)
  /** First attempts waiting for the next batch insert, and the batch being written. */
  #first: FirstWrite[] = []
  #firstTimer: NodeJS.Timeout | undefined
  /** When the armed timer fires (Date.now() time). */
  #firstDue = 0
  #flushing: Promise<void> | undefined

  readonly #firstWaitMs: number
  readonly #deliveredWaitMs: number
  /** The failures of each subscription by `_id` (what the console lists fast on FerretDB). */
  readonly failures: DeliveryFailures

  /** `wait`: the batch windows (FIRST_WAIT_MS, DELIVERED_WAIT_MS by default). */
  constructor(
    private readonly cols: Collections,
    wait: { firstMs?: number; deliveredMs?: number } = {},
  ) {
    this.#firstWaitMs = wait.firstMs ?? FIRST_WAIT_MS
    this.#deliveredWaitMs = wait.deliveredMs ?? DELIVERED_WAIT_MS
    this.failures = new DeliveryFailures(cols.deliveryFailures)
  }

  /** After a failed attempt is stored: its delivery in the failures index (a successful one needs nothing). */
  #noteFailure(
    r: { subscriptionId: string; eventId: string; status: DeliveryStatus },
    written: Promise<void>,
  ): Promise<void> {
    if (r.status !== 'dead' && r.status !== 'retrying') return written
    const { subscriptionId, eventId, status } = r
    return written.then(async () => {
      const id = this.#idOf(`${subscriptionId}|${eventId}`, subscriptionId, eventId)
      const createdAt = await this.#createdAt(id)
      await this.failures.note(subscriptionId, status, [{ id, at: new Date(), ...(createdAt ? { createdAt } : {}) }])
    })
  }

  /** When a delivery was created (what orders a search): known here since it was inserted, else read once. */
  async #createdAt(id: string): Promise<Date | undefined> {
    let at = this.#created.peek(id)
    if (!at) {
      at = (await this.cols.deliveries.findOne({ _id: id }, { projection: { createdAt: 1 } }))?.createdAt
      if (at) this.#rememberCreated(id, at)
    }
    return at
  }

  #rememberCreated(id: string, at: Date): void {
    this.#created.set(id, at)
  }

  #remember(key: string, id: string): void {
    this.#ids.set(key, id)
  }

  /** True when nothing is known of (subscription, event) here: its next attempt is inserted with a batch. */
  isFirstWrite(subscriptionId: string, eventId: string): boolean {
    return !this.#ids.has(`${subscriptionId}|${eventId}`)
  }

  /** Where (subscription, event) is written: what this process knows, else the derived id. */
  #idOf(key: string, subscriptionId: string, eventId: string): string {
    return this.#ids.peek(key) ?? deliveryId(subscriptionId, eventId)
  }

  /**
   * Upserts the delivery document of (subscription, event) by its _id. When the insert is refused on
   * a duplicate key, either a concurrent first write inserted it (an upsert is not atomic on FerretDB),
   * and the update applies to it, or an earlier version wrote the event's document under a random
   * _id (the unique (subscriptionId, eventId) index refused the second one): that one is found and
   * updated, and remembered.
   */
  async #upsert(subscriptionId: string, eventId: string, update: UpdateFilter<DeliveryDoc>): Promise<void> {
    const key = `${subscriptionId}|${eventId}`
    const id = this.#idOf(key, subscriptionId, eventId)
    try {
      await this.cols.deliveries.updateOne({ _id: id }, update, { upsert: true })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      if ((await this.cols.deliveries.updateOne({ _id: id }, update)).matchedCount === 1) {
        this.#remember(key, id)
        return
      }
      const legacy = await this.cols.deliveries.findOne({ subscriptionId, eventId }, { projection: { _id: 1 } })
      if (!legacy) throw err
      await this.cols.deliveries.updateOne({ _id: legacy._id }, update)
      this.#remember(key, legacy._id)
      return
    }
    this.#remember(key, id)
  }

  /**
   * Idempotent per (subscription, event): upserts the document and appends the attempt. The first
   * attempt of an event this process has not written goes into a batch: one insert of the documents
   * per FIRST_BATCH attempts (on FerretDB, one statement costs about as much as a whole batch); an
   * event whose document turns out to exist takes the upsert path. Resolves once the attempt is stored.
   */
  recordAttempt(r: AttemptRecord): Promise<void> {
    return this.#noteFailure(r, this.#recordAttempt(r))
  }

  #recordAttempt(r: AttemptRecord): Promise<void> {
    const now = new Date()
    const excerpt =
      r.attempt.responseExcerpt == null
        ? null
        : Buffer.from(r.attempt.responseExcerpt).subarray(0, EXCERPT_BYTES).toString('utf8')
    const attempt = { ...r.attempt, responseExcerpt: excerpt }
    const set: Partial<DeliveryDoc> = { status: r.status, updatedAt: now }
    if (r.status === 'delivered') set.deliveredAt = now
    if (r.status === 'dead') {
      set.deadAt = now
      set.deadReason = r.deadReason ?? null
    }
    if (r.status === 'pending' || r.status === 'retrying') set.retryRequestedAt = null
    const setOnInsert: Partial<DeliveryDoc> = {
      subscriptionId: r.subscriptionId,
      eventId: r.eventId,
      partnerId: r.partnerId,
      publisherId: r.publisherId ?? null,
      eventType: r.eventType,
      key: r.key,
      source: r.source ?? null,
      createdAt: now,
      ...(r.test ? { test: true } : {}),
    }
    for (const k of ['deliveredAt', 'deadAt', 'deadReason', 'retryRequestedAt'] as const)
      if (!(k in set)) (setOnInsert as Record<string, unknown>)[k] = null
    const upsert = () =>
      this.#upsert(r.subscriptionId, r.eventId, {
        $set: set,
        $setOnInsert: setOnInsert,
        $inc: { attemptCount: 1 },
        $push: { attempts: { $each: [attempt], $slice: -MAX_ATTEMPTS_KEPT } },
      })
    if (!this.isFirstWrite(r.subscriptionId, r.eventId)) return upsert()
    // a delivered first attempt stores 4 null values less this way (about a sixth of FerretDB's time
    // per insert, measured with 20,000 documents); reads fill them in again
    const doc = withoutNulls({
      _id: deliveryId(r.subscriptionId, r.eventId),
      ...setOnInsert,
      ...set,
      attemptCount: 1,
      attempts: [withoutNulls(attempt)],
    } as DeliveryDoc)
    return new Promise<void>((resolve, reject) => {
      const wait = r.status === 'delivered' ? this.#deliveredWaitMs : this.#firstWaitMs
      this.#first.push({
        r,
        key: `${r.subscriptionId}|${r.eventId}`,
        doc,
        upsert,
        resolve,
        reject,
        due: Date.now() + wait,
      })
      this.#kick(this.#first.length >= FIRST_BATCH ? 0 : wait)
    })
  }

  /** The next batch is written within `delayMs` (or sooner, when it already was due sooner). */
  #kick(delayMs: number): void {
    if (this.#flushing) return // the running flush takes the next batch when it ends
    const due = Date.now() + delayMs
    if (this.#firstTimer && this.#firstDue <= due) return
    clearTimeout(this.#firstTimer)
    this.#firstDue = due
    this.#firstTimer = setTimeout(() => {
      this.#firstTimer = undefined
      this.#flushing = this.#flushFirst().finally(() => {
        this.#flushing = undefined
        if (this.#first.length === 0) return
        let next = Infinity
        for (const w of this.#first) next = Math.min(next, w.due)
        this.#kick(this.#first.length >= FIRST_BATCH ? 0 : Math.max(0, next - Date.now()))
      })
    }, delayMs)
  }

  async #flushFirst(): Promise<void> {
    const batch = this.#first.splice(0, FIRST_BATCH)
    if (batch.length === 0) return
    // Two writes of one event in one batch: the later ones wait for the first (the upsert path).
    const seen = new Set<string>()
    const lead: FirstWrite[] = []
    const slow: FirstWrite[] = []
    for (const w of batch) {
      if (seen.has(w.key)) slow.push(w)
      else {
        seen.add(w.key)
        lead.push(w)
      }
    }
    const order = new Map(batch.map((w, i) => [w, i]))
    let written = lead
    try {
      await this.cols.deliveries.insertMany(
        lead.map((w) => w.doc),
        { ordered: false },
      )
    } catch (err) {
      // known events (their document exists: another process, a replay, an earlier version): upserts
      let known: FirstWrite[]
      try {
        ;[written, known] = partition(lead, duplicateIndexes(err, lead.length))
      } catch (fatal) {
        for (const w of batch) w.reject(fatal)
        return
      }
      slow.push(...known)
    }
    for (const w of written) {
      this.#remember(w.key, w.doc._id)
      if (w.r.status !== 'delivered') this.#rememberCreated(w.doc._id, w.doc.createdAt)
      w.resolve()
    }
    // In batch order (two attempts of one event stay in order), one at a time.
    slow.sort((a, b) => order.get(a)! - order.get(b)!)
    for (const w of slow) {
      try {
        await w.upsert()
        w.resolve()
      } catch (err) {
        w.reject(err)
      }
    }
  }

  /**
   * The delivery went dead (exhausted, rejected, or undecodable): status, reason and the dead letter
   * itself, without adding an attempt (a poison record never had one). Idempotent. A test event has no
   * dead letter (null): it is not retried.
   */
  async markDead(r: {
    subscriptionId: string
    partnerId: string
    publisherId: string | null
    eventId: string
    eventType: string
    key: string
    reason: string
    source: { topic: string; partition: number; offset: string } | null
    deadLetter: DeadLetterRecord | null
    test?: boolean
  }): Promise<void> {
    const now = new Date()
    await this.#upsert(r.subscriptionId, r.eventId, {
      $set: {
        status: 'dead',
        deadAt: now,
        deadReason: r.reason,
        ...(r.deadLetter ? { deadLetter: r.deadLetter } : {}),
        updatedAt: now,
        retryRequestedAt: null,
      },
      $setOnInsert: {
        subscriptionId: r.subscriptionId,
        eventId: r.eventId,
        partnerId: r.partnerId,
        publisherId: r.publisherId,
        eventType: r.eventType,
        key: r.key,
        source: r.source,
        createdAt: now,
        deliveredAt: null,
        attempts: [],
        attemptCount: 0,
        ...(r.test ? { test: true } : {}),
      },
    })
    await this.#noteFailure({ ...r, status: 'dead' }, Promise.resolve())
  }

  /** The deliveries `q` finds, newest first (createdAt, then `_id`): searchDeliveries. */
  search(q: DeliverySearch, req: PageRequest): Promise<Page<DeliveryDoc>> {
    return searchDeliveries(this.cols, this.failures, q, req)
  }

  /**
   * A page of what a retry of every dead letter of the subscription applies to: its dead deliveries, test events'
   * aside (they have no dead letter), oldest first, and where the next page starts (retryablePage).
   */
  retryableDeadLetters(subscriptionId: string, req: PageRequest, o: RetryableOptions = {}): Promise<Page<DeliveryDoc>> {
    return retryablePage(this.cols, this.failures, subscriptionId, req, o)
  }

  /**
   * Removes a deleted subscription's delivery log: its failures index (by `_id`), then its deliveries (on FerretDB
   * v1 a scan of the collection, as any filter but `_id`). Any process may run it, again: nothing is left to write.
   */
  async forget(subscriptionId: string): Promise<void> {
    await this.failures.end(subscriptionId)
    await this.cols.deliveries.deleteMany({ subscriptionId })
  }

  /** The delivery documents of these `_id`s, in that order (those that exist), each read by its `_id` alone. */
  byIds(ids: readonly string[], projection?: Record<string, 1>): Promise<DeliveryDoc[]> {
    return byIds(this.cols.deliveries, ids, projection)
  }

  async get(subscriptionId: string, eventId: string): Promise<DeliveryDoc | null> {
    const doc =
      (await this.cols.deliveries.findOne({
        _id: this.#idOf(`${subscriptionId}|${eventId}`, subscriptionId, eventId),
        // written by an earlier version, under a random _id
      })) ?? (await this.cols.deliveries.findOne({ subscriptionId, eventId }))
    return doc && completeDelivery(doc)
  }

  async requestRetry(input: {
    subscriptionId: string
    partnerId: string
    eventId: string | null
    requestedBy: string
  }): Promise<RetryRequestDoc> {
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
      const { subscriptionId, eventId } = input
      const id = this.#idOf(`${subscriptionId}|${eventId}`, subscriptionId, eventId)
      if ((await this.cols.deliveries.updateOne({ _id: id }, { $set: { retryRequestedAt: now } })).matchedCount === 0) {
        // an earlier version's document
        await this.cols.deliveries.updateOne({ subscriptionId, eventId }, { $set: { retryRequestedAt: now } })
      }
    } else {
      const set = { $set: { retryRequestedAt: now } }
      const sub = input.subscriptionId
      const dead = (await indexedRetryable(this.cols, this.failures, sub, { limit: Infinity }, { minimal: true }))
        ?.items
      if (!dead) await this.cols.deliveries.updateMany(retryableFilter(sub), set)
      // by `_id`, a few at a time: on FerretDB v1 an update of `_id: {$in: [...]}` scans the collection
      else
        for (let i = 0; i < dead.length; i += BY_ID_AT_ONCE)
          await Promise.all(
            dead.slice(i, i + BY_ID_AT_ONCE).map(({ _id }) => this.cols.deliveries.updateOne({ _id }, set)),
          )
    }
    return doc
  }

  /**
   * A test event of `eventType` for the subscription: a retry request the worker holding the subscription performs
   * (connectors/sink/worker/test-event.ts); its delivery is logged under `eventId`, a new UUIDv7.
   */
  async requestTest(input: {
    subscriptionId: string
    partnerId: string
    eventType: string
    requestedBy: string
  }): Promise<RetryRequestDoc> {
    const doc: RetryRequestDoc = {
      _id: newId('rtr'),
      subscriptionId: input.subscriptionId,
      partnerId: input.partnerId,
      kind: 'test',
      eventId: uuidv7(),
      eventType: input.eventType,
      status: 'pending',
      requestedAt: new Date(),
      requestedBy: input.requestedBy,
      completedAt: null,
    }
    await this.cols.retryRequests.insertOne(doc)
    return doc
  }

  /** One retry request of the subscription (null: none of that id). */
  getRetryRequest(subscriptionId: string, id: string): Promise<RetryRequestDoc | null> {
    return this.cols.retryRequests.findOne({ _id: id, subscriptionId })
  }

  /** The oldest pending retry requests (of every subscription). */
  pendingRetryRequests(limit = 100): Promise<RetryRequestDoc[]> {
    return this.cols.retryRequests.find({ status: 'pending' }).sort({ _id: 1 }).limit(limit).toArray()
  }

  /**
   * For the runtime: the oldest pending retry request of each of these subscriptions (those a worker
   * holds) that has one. Per subscription, so neither many requests of one subscription nor requests
   * no worker runs (a stopped subscription's) hold up another's.
   */
  async nextRetryRequests(subscriptionIds: string[]): Promise<RetryRequestDoc[]> {
    if (subscriptionIds.length === 0) return []
    const waiting = (await this.cols.retryRequests.distinct('subscriptionId', {
      status: 'pending',
      subscriptionId: { $in: subscriptionIds },
    })) as string[]
    const next = await Promise.all(
      waiting.map((subscriptionId) =>
        this.cols.retryRequests.find({ subscriptionId, status: 'pending' }).sort({ _id: 1 }).limit(1).next(),
      ),
    )
    return next.filter((r): r is RetryRequestDoc => r !== null)
  }

  /** For the runtime: the subscriptions that have pending retry requests (few; a worker picks those it holds). */
  async subscriptionsWithRetryRequests(): Promise<string[]> {
    return (await this.cols.retryRequests.distinct('subscriptionId', { status: 'pending' })) as string[]
  }

  /** How far a retry of every dead letter went (the worker performing it, after each page; by `_id` alone). */
  async noteRetryProgress(id: string, progress: RetryProgress): Promise<void> {
    await this.cols.retryRequests.updateOne({ _id: id }, { $set: { progress } })
  }

  /** Done, with what came of it. */
  async completeRetryRequest(id: string, outcome: string | null = null): Promise<void> {
    await this.cols.retryRequests.updateOne({ _id: id }, { $set: { status: 'done', completedAt: new Date(), outcome } })
  }

  /**
   * Completes the pending retry requests of subscriptions that no longer exist (outcome: why); returns
   * how many. Any worker may run it: every write sets the same values.
   */
  async completeRetryRequestsOfDeleted(): Promise<number> {
    const waiting = (await this.cols.retryRequests.distinct('subscriptionId', { status: 'pending' })) as string[]
    if (waiting.length === 0) return 0
    const existing = new Set(
      (await this.cols.subscriptions.find({ _id: { $in: waiting } }, { projection: { _id: 1 } }).toArray()).map(
        (s) => s._id,
      ),
    )
    const gone = waiting.filter((id) => !existing.has(id))
    if (gone.length === 0) return 0
    const r = await this.cols.retryRequests.updateMany(
      { subscriptionId: { $in: gone }, status: 'pending' },
      { $set: { status: 'done', completedAt: new Date(), outcome: 'not performed: the subscription was deleted' } },
    )
    return r.modifiedCount
  }
}
