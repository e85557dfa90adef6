/**
 * The sink runtime's own MongoDB documents: leases (which worker holds which subscription), worker
 * heartbeats (how many workers share the subscriptions) and cursors (each subscription's delivered
 * position per topic-partition).
 *
 * FerretDB v1 does not isolate concurrent updates of one document; only inserts with a unique key
 * are atomic. So every document here has one writer: a worker writes its own heartbeat, the leases
 * it holds and the cursors of the subscriptions it holds. Claims are inserts (`_id` = subscription
 * id); taking over an expired lease deletes that exact stale document (its holder and expiry in the
 * filter) and inserts a fresh one, so of two workers racing for it one insert wins.
 */
import type { Collection, Db } from 'mongodb'
import { Leases, type LeaseDoc } from '../leases.ts'
import { bulkWriteBounded } from '../../control-plane/store.ts'

export type { LeaseDoc }

export interface WorkerDoc {
  _id: string
  startedAt: Date
  expiresAt: Date
}

/** One document per subscription: its positions in every topic-partition it reads. */
export interface CursorDoc {
  /** The subscription id. */
  _id: string
  /** `<topic>|<partition>` → the next offset to deliver (everything below is delivered, dead-lettered or skipped). */
  positions: Record<string, string>
  /** The offset reset (control plane) these positions already reflect. */
  appliedResetId: string | null
  workerId: string
  updatedAt: Date
}

export const SINK_COLLECTIONS = { leases: 'sink_leases', workers: 'sink_workers', cursors: 'sink_cursors' } as const

export function tpKey(topic: string, partition: number): string {
  return `${topic}|${partition}`
}

/**
 * Topic names hold dots ("inventory.levels"), which MongoDB field names should not (FerretDB refuses
 * them): a position's "topic|partition" key is stored with '.' as '%2E' ('%' cannot occur in a topic name).
 */
function encodeKeys(positions: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(positions).map(([k, v]) => [k.replaceAll('.', '%2E'), v]))
}

function decodeKeys(positions: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(positions ?? {}).map(([k, v]) => [k.replaceAll('%2E', '.'), v]))
}


/** The sink workers' leases (on subscriptions), heartbeats and cursors. */
export class SinkStore extends Leases {
  readonly workers: Collection<WorkerDoc>
  readonly cursors: Collection<CursorDoc>

  constructor(db: Db) {
    super(db.collection(SINK_COLLECTIONS.leases))
    this.workers = db.collection(SINK_COLLECTIONS.workers)
    this.cursors = db.collection(SINK_COLLECTIONS.cursors)
  }

  async init(): Promise<void> {
    const existing = new Set((await this.leases.listIndexes().toArray().catch(() => [])).map((i) => i.name as string))
    if (!existing.has('worker')) await this.leases.createIndexes([{ key: { workerId: 1 }, name: 'worker' }])
  }

  /** This worker is alive until `expiresAt` (its own document). */
  async heartbeat(workerId: string, startedAt: Date, ttlMs: number, now = new Date()): Promise<void> {
    await this.workers.replaceOne({ _id: workerId }, { startedAt, expiresAt: new Date(now.getTime() + ttlMs) }, { upsert: true })
  }

  async liveWorkers(now = new Date()): Promise<string[]> {
    return (await this.workers.find({ expiresAt: { $gt: now } }, { projection: { _id: 1 } }).toArray()).map((w) => w._id)
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.workers.deleteOne({ _id: workerId })
  }

  /** Deletes heartbeats that expired long ago (any worker may; the doc's owner is gone). */
  async sweepWorkers(olderThan: Date): Promise<void> {
    await this.workers.deleteMany({ expiresAt: { $lt: olderThan } })
  }

  async getCursor(subscriptionId: string): Promise<CursorDoc | null> {
    const doc = await this.cursors.findOne({ _id: subscriptionId })
    return doc ? { ...doc, positions: decodeKeys(doc.positions) } : null
  }

  /** The cursors of many subscriptions (one query). */
  async getCursors(subscriptionIds: string[]): Promise<Map<string, CursorDoc>> {
    if (subscriptionIds.length === 0) return new Map()
    const docs = await this.cursors.find({ _id: { $in: subscriptionIds } }).toArray()
    return new Map(docs.map((d) => [d._id, { ...d, positions: decodeKeys(d.positions) }]))
  }

  /** Writes the cursors of the subscriptions this worker holds (a few bulk commands). */
  async writeCursors(docs: CursorDoc[]): Promise<void> {
    if (docs.length === 0) return
    await bulkWriteBounded(
      this.cursors,
      docs.map((d) => ({ replaceOne: { filter: { _id: d._id }, replacement: { positions: encodeKeys(d.positions), appliedResetId: d.appliedResetId, workerId: d.workerId, updatedAt: d.updatedAt }, upsert: true } })),
    )
  }

  async deleteCursor(subscriptionId: string): Promise<void> {
    await this.cursors.deleteOne({ _id: subscriptionId })
  }
}
