/**
 * Leases: which worker runs which item (a subscription, a source), one document per item (`_id` = the
 * item's id) in a collection of its own. FerretDB v1 does not isolate concurrent updates of one
 * document, so a claim is an insert (the unique `_id` decides), a takeover deletes exactly the stale
 * document it read before inserting a fresh one, and only the holder renews or releases.
 *
 * With an `incarnation` (the sink workers: one random value per process start), a lease is held by
 * (workerId, incarnation): a process restarted under the same worker id does not renew, count or
 * release the leases of its previous incarnation as its own; it takes them over like stale leases
 * (connectors/sink/worker.ts decides when that is safe).
 */
import type { Collection } from 'mongodb'
import { isDuplicateKey } from '../common/store-errors.ts'

export interface LeaseDoc {
  /** The subscription id. */
  _id: string
  workerId: string
  /** The holder process's incarnation (sink workers); absent in leases written without one. */
  incarnation?: string
  acquiredAt: Date
  expiresAt: Date
}

export class Leases {
  constructor(
    readonly leases: Collection<LeaseDoc>,
    readonly incarnation?: string,
  ) {}

  /** The filter of the leases this process holds under `workerId`. */
  #holder(workerId: string): { workerId: string; incarnation?: string } {
    return this.incarnation === undefined ? { workerId } : { workerId, incarnation: this.incarnation }
  }

  #fresh(id: string, workerId: string, now: Date, expiresAt: Date): LeaseDoc {
    return { _id: id, ...this.#holder(workerId), acquiredAt: now, expiresAt }
  }

  all(): Promise<LeaseDoc[]> {
    return this.leases.find({}).toArray()
  }

  /**
   * Claims an item: true when this worker now holds it. A live lease of another worker wins;
   * an expired one (`stale`, as read) is deleted first, conditionally, so only one taker succeeds.
   */
  async claim(id: string, workerId: string, ttlMs: number, stale?: LeaseDoc, now = new Date()): Promise<boolean> {
    if (stale) {
      const del = await this.leases.deleteOne({ _id: id, workerId: stale.workerId, expiresAt: stale.expiresAt })
      if (del.deletedCount === 0) return false
    }
    try {
      await this.leases.insertOne(this.#fresh(id, workerId, now, new Date(now.getTime() + ttlMs)))
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  /** Extends the leases this worker holds; returns the ids it still holds (a lease taken over is gone). */
  async renew(workerId: string, ids: string[], ttlMs: number, now = new Date()): Promise<Set<string>> {
    if (ids.length > 0)
      await this.leases.updateMany(
        { _id: { $in: ids }, ...this.#holder(workerId) },
        { $set: { expiresAt: new Date(now.getTime() + ttlMs) } },
      )
    return this.heldBy(workerId)
  }

  /** The ids of the leases this process holds under `workerId` (one query, whatever their number). */
  async heldBy(workerId: string): Promise<Set<string>> {
    const held = await this.leases.find(this.#holder(workerId), { projection: { _id: 1 } }).toArray()
    return new Set(held.map((l) => l._id))
  }

  /** When a lease claimed now expires (the sink workers' leases last while their holder's heartbeat does). */
  protected expiry(now: Date, ttlMs: number): Date {
    return new Date(now.getTime() + ttlMs)
  }

  /**
   * Claims many items in two commands (the stale leases deleted conditionally, then one
   * unordered insert): returns the ids this worker now holds. The same rule as `claim`: the unique
   * `_id` decides, so of two workers racing for an item one insert wins; the insert's own answer
   * tells which (not a query of the ids back: FerretDB v1 matches an `$in` of n ids by comparing each
   * document with each id, 3 s for 10,000 leases).
   */
  async claimMany(
    ids: string[],
    workerId: string,
    ttlMs: number,
    stale: ReadonlyMap<string, LeaseDoc>,
    now = new Date(),
  ): Promise<Set<string>> {
    if (ids.length === 0) return new Set()
    const deletes = ids.flatMap((id) => {
      const l = stale.get(id)
      return l ? [{ deleteOne: { filter: { _id: id, workerId: l.workerId, expiresAt: l.expiresAt } } }] : []
    })
    if (deletes.length > 0) await this.leases.bulkWrite(deletes, { ordered: false })
    const expiresAt = this.expiry(now, ttlMs)
    const lost = new Set<number>()
    try {
      await this.leases.insertMany(
        ids.map((id) => this.#fresh(id, workerId, now, expiresAt)),
        { ordered: false },
      )
    } catch (err) {
      const writeErrors = (err as { writeErrors?: unknown }).writeErrors
      const errors = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : []
      if (!(errors.length > 0 && errors.every(isDuplicateKey))) throw err
      for (const e of errors as Array<{ index?: unknown }>) {
        if (typeof e.index !== 'number') throw err
        lost.add(e.index)
      }
    }
    return new Set(ids.filter((_, i) => !lost.has(i)))
  }

  async release(id: string, workerId: string): Promise<void> {
    await this.leases.deleteOne({ _id: id, ...this.#holder(workerId) })
  }

  async releaseMany(ids: string[], workerId: string): Promise<void> {
    if (ids.length === 0) return
    if (ids.length === 1) return this.release(ids[0]!, workerId)
    await this.leases.deleteMany({ _id: { $in: ids }, ...this.#holder(workerId) })
  }
}
