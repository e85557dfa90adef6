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
 *
 * A worker process's identity is its worker id plus an INCARNATION (random per start): its heartbeat
 * document and its leases carry both, so a process restarted under the same id (systemd, a Kubernetes
 * StatefulSet) can tell its predecessor's leases from its own (identity.ts decides when it may take
 * them), and a process that lost its id to another one renews nothing.
 *
 * A lease lasts as long as its holder's heartbeat (worker/ownership.ts): the worker renews one document
 * per heartbeat, not one per subscription (FerretDB v1 updates about 1,000 documents a second: renewing
 * 10,000 leases took 11 s, every heartbeat). Its `expiresAt` is HELD_WHILE_HOLDER_LIVES, so that a
 * worker of an earlier version, which takes a lease over once it expired, never takes one from a live
 * holder.
 */
import type { Collection, Db } from 'mongodb'
import { Leases, type LeaseDoc } from '../leases.ts'
import { bulkWriteBounded, findByIds, upsertMany } from '../../control-plane/store.ts'
import { isDuplicateKey } from '../../common/store-errors.ts'

export type { LeaseDoc }

/** Where a worker process runs: enough to tell, on the same host, whether it still exists. */
export interface WorkerHost {
  hostname: string
  /** Linux: /proc/sys/kernel/random/boot_id; null elsewhere. */
  bootId: string | null
  /** Linux: the pid namespace (/proc/self/ns/pid), within which a pid names one process; null elsewhere. */
  pidNamespace: string | null
  pid: number
}

/** A worker process's heartbeat (`_id` = its worker id). */
export interface WorkerDoc {
  _id: string
  /** Random per process start; absent in documents of earlier versions. */
  incarnation?: string
  host?: WorkerHost
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

/** The `expiresAt` of a sink lease: it never expires by itself; its holder's heartbeat decides. */
export const HELD_WHILE_HOLDER_LIVES = new Date('9999-12-31T23:59:59.999Z')

/** A lease holder or a heartbeat as one string: the worker id and the incarnation. */
export function holderKey(workerId: string, incarnation: string | undefined): string {
  return `${workerId}\u0000${incarnation ?? ''}`
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

  /** `incarnation`: this process's, held in its heartbeat and its leases (identity.ts). */
  constructor(db: Db, incarnation?: string) {
    super(db.collection(SINK_COLLECTIONS.leases), incarnation)
    this.workers = db.collection(SINK_COLLECTIONS.workers)
    this.cursors = db.collection(SINK_COLLECTIONS.cursors)
  }

  async init(): Promise<void> {
    const existing = new Set(
      (
        await this.leases
          .listIndexes()
          .toArray()
          .catch(() => [])
      ).map((i) => i.name as string),
    )
    if (!existing.has('worker')) await this.leases.createIndexes([{ key: { workerId: 1 }, name: 'worker' }])
  }

  /** The heartbeat document of a worker id (whichever process holds it). */
  identity(workerId: string): Promise<WorkerDoc | null> {
    return this.workers.findOne({ _id: workerId })
  }

  /**
   * Takes a worker id: inserts `doc`, after deleting exactly `stale` (as read) when there is one. False
   * when another process got it first (the unique `_id` decides, as for leases).
   */
  async claimIdentity(doc: WorkerDoc, stale: WorkerDoc | null): Promise<boolean> {
    if (stale) await this.workers.deleteOne({ _id: stale._id, startedAt: stale.startedAt, expiresAt: stale.expiresAt })
    try {
      await this.workers.insertOne(doc)
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  /** This process is alive until `expiresAt`; false when its worker id's document is no longer its own. */
  async heartbeat(workerId: string, incarnation: string, ttlMs: number, now = new Date()): Promise<boolean> {
    const r = await this.workers.updateOne(
      { _id: workerId, incarnation },
      { $set: { expiresAt: new Date(now.getTime() + ttlMs) } },
    )
    return r.matchedCount === 1
  }

  /** The heartbeats that have not expired (worker id and incarnation). */
  liveWorkers(now = new Date()): Promise<Array<Pick<WorkerDoc, '_id' | 'incarnation'>>> {
    return this.workers.find({ expiresAt: { $gt: now } }, { projection: { _id: 1, incarnation: 1 } }).toArray()
  }

  protected override expiry(): Date {
    return HELD_WHILE_HOLDER_LIVES
  }

  /** Removes this process's heartbeat (not a later incarnation's). */
  async removeWorker(workerId: string, incarnation: string): Promise<void> {
    await this.workers.deleteOne({ _id: workerId, incarnation })
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
    const docs = await findByIds(this.cursors, subscriptionIds)
    return new Map(docs.map((d) => [d._id, { ...d, positions: decodeKeys(d.positions) }]))
  }

  /**
   * Writes the cursors of the subscriptions this worker holds (a few bulk commands); `fresh`: most of them
   * have none stored yet (their first write: one insert, the others replaced).
   */
  async writeCursors(docs: CursorDoc[], fresh = false): Promise<void> {
    if (docs.length === 0) return
    if (fresh)
      return upsertMany(
        this.cursors,
        docs.map((d) => ({ ...d, positions: encodeKeys(d.positions) })),
      )
    await bulkWriteBounded(
      this.cursors,
      docs.map((d) => ({
        replaceOne: {
          filter: { _id: d._id },
          replacement: {
            positions: encodeKeys(d.positions),
            appliedResetId: d.appliedResetId,
            workerId: d.workerId,
            updatedAt: d.updatedAt,
          },
          upsert: true,
        },
      })),
    )
  }

  async deleteCursor(subscriptionId: string): Promise<void> {
    await this.cursors.deleteOne({ _id: subscriptionId })
  }
}
