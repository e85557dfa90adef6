/**
 * Which worker runs which source: one lease document per source (`_id` = source id) in
 * `source_leases`, so exactly one instance of a source runs across the worker processes.
 *
 * The same protocol as the sink leases (connectors/sink/store.ts), in a collection of its own so
 * that the sink workers' fair-share counts never see source leases: FerretDB v1 does not isolate
 * concurrent updates of one document, so a claim is an insert (unique `_id`), a takeover deletes
 * exactly the stale document it read and inserts a fresh one, and only the holder renews.
 */
import type { Collection, Db } from 'mongodb'

export interface SourceLeaseDoc {
  _id: string
  workerId: string
  acquiredAt: Date
  expiresAt: Date
}

export const SOURCE_LEASES = 'source_leases'

const isDuplicateKey = (err: unknown) => (err as { code?: unknown })?.code === 11000

export class SourceLeases {
  readonly leases: Collection<SourceLeaseDoc>

  constructor(db: Db) {
    this.leases = db.collection(SOURCE_LEASES)
  }

  all(): Promise<SourceLeaseDoc[]> {
    return this.leases.find({}).toArray()
  }

  /** True when this worker now holds the source: a free id, or an expired lease (`stale`, as read) taken over. */
  async claim(id: string, workerId: string, ttlMs: number, stale?: SourceLeaseDoc, now = new Date()): Promise<boolean> {
    if (stale) {
      const del = await this.leases.deleteOne({ _id: id, workerId: stale.workerId, expiresAt: stale.expiresAt })
      if (del.deletedCount === 0) return false
    }
    try {
      await this.leases.insertOne({ _id: id, workerId, acquiredAt: now, expiresAt: new Date(now.getTime() + ttlMs) })
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  /** Extends this worker's leases; returns the ids it still holds. */
  async renew(workerId: string, ids: string[], ttlMs: number, now = new Date()): Promise<Set<string>> {
    if (ids.length > 0) await this.leases.updateMany({ _id: { $in: ids }, workerId }, { $set: { expiresAt: new Date(now.getTime() + ttlMs) } })
    const held = await this.leases.find({ workerId }, { projection: { _id: 1 } }).toArray()
    return new Set(held.map((l) => l._id))
  }

  async release(id: string, workerId: string): Promise<void> {
    await this.leases.deleteOne({ _id: id, workerId })
  }
}
