/**
 * An index of a subscription's failed deliveries (dead and retrying), read by `_id` only.
 *
 * Why: FerretDB v1 (the local store) uses an index only for a filter of exactly `{_id: value}`; any
 * other filter, `{subscriptionId, status}` included, reads and parses every document of the
 * collection (measured: 2 to 3.5 s for 20,000 deliveries, whatever the secondary indexes), and the
 * delivery log is the biggest collection. The console's "failures of this subscription, newest first"
 * would take seconds. So the delivery log also appends the id of every failed attempt's delivery to
 * pages of at most PAGE_SIZE entries: `<subscription>|<status>` (the head: how many pages, since when)
 * and `<subscription>|<status>|<n>` (page n), each one document read by `_id`. A reader takes the
 * newest page first and fetches the deliveries by `_id`; an entry whose delivery moved on (retried
 * and delivered) is skipped there, so entries are never updated or removed in place (a delivery
 * retrying several times has several entries: readers keep the newest).
 *
 * One writer per (subscription, status) in a process: appends run one after the other (FerretDB v1
 * does not isolate concurrent updates of one document); the worker holding a subscription's lease is
 * the only process writing its deliveries. Failures recorded before the index existed are not in it:
 * the head says since when it holds them (the console offers the slow search for older ones). A
 * subscription created since its heads are written with it (`begin`) has every failure in the index:
 * the delivery log's search of a failure status then reads the index instead of scanning.
 */
import type { Collection, UpdateFilter } from 'mongodb'
import { isDuplicateKey } from '../common/store-errors.ts'
import { LruMap } from '../common/lru-map.ts'

export const PAGE_SIZE = 500
export type FailureStatus = 'dead' | 'retrying'
export const FAILURE_STATUSES: readonly FailureStatus[] = ['dead', 'retrying']
export const isFailureStatus = (s: string | undefined): s is FailureStatus =>
  FAILURE_STATUSES.includes(s as FailureStatus)

/**
 * Whether an index whose head says `since` holds every failure of a subscription created at `createdAt`:
 * it was kept from the subscription's creation on (heads written with it, `begin`), so nothing is older.
 */
export const holdsWholeLife = (since: Date | null | undefined, createdAt: Date | null | undefined): boolean =>
  !!since && !!createdAt && since <= createdAt

/** A failed attempt's delivery, and when that delivery was created (what orders a search; older entries lack it). */
export interface FailureEntry {
  id: string
  at: Date
  createdAt?: Date
}

export interface FailureIndexDoc {
  /** `<subscriptionId>|<status>` (head) or `<subscriptionId>|<status>|<page>` (a page, from 1). */
  _id: string
  /** Head: pages written so far, and since when the index holds this subscription's failures. */
  pages?: number
  since?: Date
  /** Page: entries in the order written (oldest first). */
  entries?: FailureEntry[]
  count?: number
}

export interface FailureCursor {
  page: number
  /** Entries of that page already read (from its end). */
  skip: number
}

export class DeliveryFailures {
  /** `<sub>|<status>` → { pages, count of the last page } as this process last wrote them. */
  readonly #heads = new LruMap<string, { pages: number; count: number }>(10_000)
  readonly #chains = new Map<string, Promise<void>>()

  constructor(private readonly col: Collection<FailureIndexDoc>) {}

  /**
   * The heads of a new subscription, before it exists (so before any delivery): its index holds its
   * failures `since` its creation, its whole life.
   */
  async begin(subscriptionId: string, since: Date): Promise<void> {
    for (const status of FAILURE_STATUSES)
      await this.#upsert(`${subscriptionId}|${status}`, { $setOnInsert: { pages: 0, since } })
  }

  /**
   * Removes a subscription's index, each document by `_id`: its pages, then its heads (a removal cut off halfway
   * leaves a head, which finds the pages left again). The pages are those its head counts, or this process wrote
   * (a write landing after the head was removed writes its page without it), and any right after those. For a
   * deleted subscription, or one whose creation failed.
   */
  async end(subscriptionId: string): Promise<void> {
    for (const status of FAILURE_STATUSES) {
      const head = `${subscriptionId}|${status}`
      const doc = await this.col.findOne({ _id: head }, { projection: { pages: 1 } })
      const pages = Math.max(doc?.pages ?? 0, this.#heads.peek(head)?.pages ?? 0)
      this.#heads.delete(head)
      const ids = Array.from({ length: pages }, (_, i) => `${head}|${i + 1}`)
      for (let i = 0; i < ids.length; i += 16)
        await Promise.all(ids.slice(i, i + 16).map((_id) => this.col.deleteOne({ _id })))
      let next = pages + 1
      while ((await this.col.deleteOne({ _id: `${head}|${next}` })).deletedCount > 0) next++
      await this.col.deleteOne({ _id: head })
    }
  }

  /** Appends the delivery `_id`s that failed with `status` (resolves once stored). */
  note(subscriptionId: string, status: FailureStatus, ids: FailureEntry[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve()
    const head = `${subscriptionId}|${status}`
    const run = (this.#chains.get(head) ?? Promise.resolve()).then(() => this.#append(head, ids))
    const tail = run.catch(() => undefined)
    this.#chains.set(head, tail)
    void tail.then(() => {
      if (this.#chains.get(head) === tail) this.#chains.delete(head)
    })
    return run
  }

  async #append(head: string, ids: FailureEntry[]): Promise<void> {
    let known = this.#heads.peek(head)
    if (!known) {
      const doc = await this.col.findOne({ _id: head })
      const pages = doc?.pages ?? 0
      const last = pages > 0 ? await this.col.findOne({ _id: `${head}|${pages}` }, { projection: { count: 1 } }) : null
      known = { pages, count: last?.count ?? 0 }
      if (!doc) await this.#upsert(head, { $setOnInsert: { pages: 0, since: new Date() } })
    }
    let rest = ids
    while (rest.length > 0) {
      if (known.pages === 0 || known.count >= PAGE_SIZE) {
        known = { pages: known.pages + 1, count: 0 }
        await this.col.updateOne({ _id: head }, { $set: { pages: known.pages } })
      }
      const take = rest.slice(0, PAGE_SIZE - known.count)
      rest = rest.slice(take.length)
      await this.#upsert(`${head}|${known.pages}`, {
        $push: { entries: { $each: take } },
        $inc: { count: take.length },
      })
      known = { pages: known.pages, count: known.count + take.length }
    }
    this.#heads.set(head, known)
  }

  /**
   * An upsert by `_id`; FerretDB's is not atomic, so a concurrent writer (another process, briefly, at
   * a lease hand-over) may insert the document first: the insert then fails on the duplicate key and
   * the update applies to that document.
   */
  async #upsert(id: string, update: UpdateFilter<FailureIndexDoc>): Promise<void> {
    try {
      await this.col.updateOne({ _id: id }, update, { upsert: true })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      await this.col.updateOne({ _id: id }, update)
    }
  }

  /**
   * The head of a subscription's index for a status (null: nothing recorded in it yet); `since` null when the head
   * does not say (then it is not known to hold anything older than its entries: holdsWholeLife is false).
   */
  async head(subscriptionId: string, status: FailureStatus): Promise<{ pages: number; since: Date | null } | null> {
    const doc = await this.col.findOne({ _id: `${subscriptionId}|${status}` })
    return doc ? { pages: doc.pages ?? 0, since: doc.since ?? null } : null
  }

  /**
   * Every delivery the first `pages` pages name, once each (the entry saying when it was created, when
   * one does), pages read a few at a time.
   */
  async all(subscriptionId: string, status: FailureStatus, pages: number): Promise<FailureEntry[]> {
    const byId = new Map<string, FailureEntry>()
    for (let from = 1; from <= pages; from += 16) {
      const ids = Array.from(
        { length: Math.min(16, pages - from + 1) },
        (_, i) => `${subscriptionId}|${status}|${from + i}`,
      )
      for (const page of await Promise.all(ids.map((_id) => this.col.findOne({ _id }))))
        for (const e of page?.entries ?? []) if (!byId.get(e.id)?.createdAt) byId.set(e.id, e)
    }
    return [...byId.values()]
  }

  /**
   * Delivery ids, newest first, from `from` (default: the newest page's end), at most `want` of them
   * (each id once), reading at most `maxPages` pages; and where to continue (null: the oldest reached).
   */
  async newest(
    subscriptionId: string,
    status: FailureStatus,
    want: number,
    from: FailureCursor | null,
    maxPages = 10,
  ): Promise<{ ids: string[]; next: FailureCursor | null }> {
    const head = await this.head(subscriptionId, status)
    let at: FailureCursor = from ?? { page: head?.pages ?? 0, skip: 0 }
    const ids: string[] = []
    const seen = new Set<string>()
    for (let read = 0; at.page >= 1 && ids.length < want && read < maxPages; read++) {
      const page = await this.col.findOne({ _id: `${subscriptionId}|${status}|${at.page}` })
      const entries = (page?.entries ?? []).slice(0, Math.max(0, (page?.entries?.length ?? 0) - at.skip)).reverse()
      let used = 0
      for (const e of entries) {
        used++
        if (seen.has(e.id)) continue
        seen.add(e.id)
        ids.push(e.id)
        if (ids.length >= want) break
      }
      at = used < entries.length ? { page: at.page, skip: at.skip + used } : { page: at.page - 1, skip: 0 }
    }
    return { ids, next: at.page >= 1 ? at : null }
  }
}
