/**
 * The outbox relay's source: a pull-style SourceConnector over the events the control plane wrote
 * into organization documents (OrganizationDoc.outbox) together with the change they report.
 *
 * - poll: scans organizations whose outbox was written since the last scan (index outbox_at_id; a
 *   full scan at start, after taking the lease over and every `fullScanMs`), and returns every entry
 *   beyond what `outbox_relay` says was sent, oldest first per organization;
 * - the SourceRunner produces them (idempotent producer, acks=all, one request in flight, keyed by
 *   the entry's key: the partner id) and retries the same batch until the broker acked it;
 * - commit: records the highest acknowledged sequence per organization in `outbox_relay`.
 *
 * A crash between the ack and the commit produces those entries again at the next start, with the
 * same event id (ce_id), so consumers recognise the duplicates. One relay sends at a time across
 * processes: a lease in `outbox_relay_lease`, checked before every batch and renewed on a timer while
 * held, also while the runner retries a batch through a long Kafka outage (a lapsed lease would let a
 * second relay send newer entries that the first one's retry then overtakes). A relay that lost the
 * lease anyway (the store out of its reach) drops its failed batch instead of sending it again, and a
 * commit never moves `sentSequence` back. Each document keeps a
 * single writer (FerretDB v1 does not isolate concurrent updates of one document): organizations are
 * written by the API, `outbox_relay` and the lease by the relay holding it.
 */
import type { Collection, Db } from 'mongodb'
import type { Logger } from '../../common/logger.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../../connectors/source/types.ts'
import { bulkWriteBounded, COLLECTION_NAMES } from '../../control-plane/store.ts'
import type { OrganizationDoc, OutboxEntry, OutboxRelayDoc } from '../../control-plane/types.ts'
import { isDuplicateKey } from '../../common/store-errors.ts'
import { Leases, type LeaseDoc } from '../../connectors/leases.ts'

export const OUTBOX_LEASE_COLLECTION = 'outbox_relay_lease'

/**
 * The relay's lease: one document, `_id` 'relay', held through connectors/leases.ts (workerId = the relay's holder id).
 */
export type OutboxLeaseDoc = LeaseDoc

export interface OutboxSourceOptions {
  db: Db
  /** Id of this relay in the lease (unique per process). */
  holderId: string
  /** Scan interval when nothing woke the relay, in ms. */
  pollMs: number
  leaseTtlMs: number
  /** Organizations per scan. Default 200. */
  scanBatch?: number
  /**
   * How far back each incremental scan reaches before the previous one (clock skew between API processes, slow writes),
   * in ms. Default 60 s.
   */
  scanMarginMs?: number
  /** Interval of the full scan that catches anything an incremental scan could have missed, in ms. Default 5 min. */
  fullScanMs?: number
  /**
   * The collection whose documents carry outboxes (default: organizations; the deal and lead registries
   * keep theirs in their own documents, control-plane/deals/) and the relay's lease id in
   * `outbox_relay_lease` (default 'relay'): one relay per collection, each with its lease.
   */
  collection?: string
  leaseId?: string
  /** Turns a stored entry's value into what avsc encodes (entries stored as JSON, e.g. decimals as strings). */
  convert?: (entry: OutboxEntry) => Record<string, unknown>
  /**
   * The collection holds only what is pending (one document per event or step, control-plane/deals/):
   * every scan reads all of it, and a commit deletes what the broker acknowledged instead of recording
   * a sequence per document. For many documents with few events each (deals), where scanning the
   * documents themselves would read them all again and again (FerretDB v1 reads whole collections).
   */
  deleteSent?: boolean
}

type Value = Record<string, unknown>

export class OutboxSource implements SourceConnector<undefined, Value> {
  readonly kind = 'source' as const
  private readonly orgs: Collection<OrganizationDoc>
  private readonly relay: Collection<OutboxRelayDoc>
  private readonly lease: Collection<OutboxLeaseDoc>
  private readonly leases: Leases
  private readonly leaseId: string
  private readonly scanBatch: number
  private readonly scanMarginMs: number
  private readonly fullScanMs: number
  private log: Logger | undefined
  private signal: AbortSignal | undefined
  private wake: (() => void) | undefined
  private nudged = true
  private more = false
  private scanFrom = new Date(0)
  private lastFullScan = 0
  private heldUntil = 0
  private renewTimer: NodeJS.Timeout | undefined
  /** Lease operations one at a time (the renewal timer and polls share the lease document). */
  private leaseOps: Promise<unknown> = Promise.resolve()
  /** Sent sequence per organization (this relay is the only writer while it holds the lease). */
  private readonly sent = new Map<string, number>()
  /** Organization and sequence of the records in flight, by event id. */
  private readonly inFlight = new Map<string, { organizationId: string; sequence: number }>()
  readonly stats = { scans: 0, fullScans: 0, relayed: 0, leaseAcquired: 0 }

  constructor(private readonly options: OutboxSourceOptions) {
    this.orgs = options.db.collection(options.collection ?? COLLECTION_NAMES.organizations)
    this.leaseId = options.leaseId ?? 'relay'
    this.relay = options.db.collection(COLLECTION_NAMES.outboxRelay)
    this.lease = options.db.collection(OUTBOX_LEASE_COLLECTION)
    this.leases = new Leases(this.lease)
    this.scanBatch = options.scanBatch ?? 200
    this.scanMarginMs = options.scanMarginMs ?? 60_000
    this.fullScanMs = options.fullScanMs ?? 5 * 60_000
  }

  async start(_config: undefined, ctx: SourceContext): Promise<void> {
    this.log = ctx.logger
    this.signal = ctx.signal
    this.signal.addEventListener('abort', () => this.wake?.(), { once: true })
    this.nudged = true
    const every = Math.max(50, Math.floor(this.options.leaseTtlMs / 3))
    this.renewTimer = setInterval(() => {
      if (this.heldUntil > 0)
        void this.holdLease().catch((err) =>
          this.log?.warn('outbox relay lease renewal failed', { code: 'RETRIABLE', stage: 'outbox-lease', err }),
        )
    }, every)
    this.renewTimer.unref()
  }

  /** Something was written to an outbox: scan now instead of at the next interval. */
  nudge(): void {
    this.nudged = true
    this.wake?.()
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.signal?.aborted || this.nudged) return resolve()
      const done = (): void => {
        clearTimeout(t)
        this.wake = undefined
        resolve()
      }
      const t = setTimeout(done, ms)
      this.wake = done
    })
  }

  /** Holds (or takes over, or renews) the relay lease; false while another relay holds it. */
  private holdLease(): Promise<boolean> {
    const op = this.leaseOps.then(() => this.holdLeaseNow())
    this.leaseOps = op.catch(() => undefined)
    return op
  }

  private async holdLeaseNow(): Promise<boolean> {
    const now = Date.now()
    const ttl = this.options.leaseTtlMs
    if (this.heldUntil - now > ttl / 2) return true
    const me = this.options.holderId
    const until = new Date(now + ttl)
    const held = this.heldUntil > 0
    if ((await this.leases.renew(me, [this.leaseId], ttl, new Date(now))).has(this.leaseId)) {
      this.heldUntil = until.getTime()
      return true
    }
    if (held) this.lostLease()
    const current = await this.lease.findOne({ _id: this.leaseId })
    if (current && current.expiresAt.getTime() > now) {
      this.heldUntil = 0
      return false
    }
    // Free or expired: the stale document is removed exactly as read (not one a rival wrote meanwhile), then claimed.
    if (!(await this.leases.claim(this.leaseId, me, ttl, current ?? undefined, new Date(now)))) return false
    this.heldUntil = until.getTime()
    // Another relay may have sent meanwhile: forget what we knew and scan everything again.
    this.sent.clear()
    this.scanFrom = new Date(0)
    this.stats.leaseAcquired++
    this.log?.info('outbox relay lease acquired', { holder: me })
    return true
  }

  /** Another relay took the lease over: what this one knew of the sent sequences is stale. */
  private lostLease(): void {
    this.heldUntil = 0
    this.sent.clear()
    this.scanFrom = new Date(0)
    this.log?.warn('outbox relay lease lost', { holder: this.options.holderId })
  }

  /**
   * Before the runner produces a failed batch again: only while this relay still holds the lease
   * (renewing it if due). Otherwise the batch is dropped; whoever holds the lease sends those entries,
   * and this relay scans them again if it gets the lease back. A store out of reach counts as held
   * until the lease would expire.
   */
  async resend(records: SourceRecord<Value>[]): Promise<boolean> {
    let held: boolean
    try {
      held = await this.holdLease()
    } catch {
      held = this.heldUntil > Date.now()
    }
    if (!held) {
      for (const r of records) this.inFlight.delete(r.id!)
      if (this.heldUntil === 0) this.scanFrom = new Date(0)
    }
    return held
  }

  /** A failing store (MongoDB down) is retried at the next interval; the runner must not fail for it. */
  async poll(): Promise<SourceRecord<Value>[]> {
    if (!this.more) await this.idle(this.options.pollMs)
    this.nudged = false
    this.more = false
    if (this.signal?.aborted) return []
    try {
      return await this.scan()
    } catch (err) {
      this.heldUntil = 0
      this.sent.clear()
      this.log?.warn('outbox scan failed; retrying', { code: 'RETRIABLE', stage: 'outbox-scan', err })
      return []
    }
  }

  private async scan(): Promise<SourceRecord<Value>[]> {
    if (!(await this.holdLease())) return []
    const started = Date.now()
    if (started - this.lastFullScan >= this.fullScanMs) {
      this.scanFrom = new Date(0)
      this.lastFullScan = started
      this.stats.fullScans++
    }
    const pendingOnly = this.options.deleteSent === true
    const docs = await this.orgs
      .find(pendingOnly ? {} : { outboxAt: { $gte: this.scanFrom } }, {
        projection: { _id: 1, outbox: 1, outboxAt: 1 },
      })
      .sort({ outboxAt: 1, _id: 1 })
      .limit(this.scanBatch)
      .toArray()
    this.stats.scans++
    const unknown = pendingOnly ? [] : docs.map((d) => d._id).filter((id) => !this.sent.has(id))
    if (unknown.length > 0) {
      for (const s of await this.relay.find({ _id: { $in: unknown } }).toArray()) this.sent.set(s._id, s.sentSequence)
    }
    const records: SourceRecord<Value>[] = []
    for (const doc of docs) {
      const sent = this.sent.get(doc._id) ?? 0
      const pending = (doc.outbox ?? []).filter((e) => e.sequence > sent).sort((a, b) => a.sequence - b.sequence)
      for (const e of pending) {
        this.inFlight.set(e.eventId, { organizationId: doc._id, sequence: e.sequence })
        // The organization the event is about publishes it: a partner owns its profile (ce_publisherid);
        // a deal or a lead names its publisher (the manufacturer) in its entries.
        const value = this.options.convert ? this.options.convert(e) : e.value
        const publisherId = e.publisherId ?? doc._id
        const occurredAt = new Date(e.occurredAt)
        records.push({ topic: e.topic, key: e.key, value, type: e.type, id: e.eventId, occurredAt, publisherId })
      }
    }
    if (docs.length === this.scanBatch) {
      // More changed than one scan holds: continue from the last one seen, without waiting.
      this.scanFrom = docs[docs.length - 1]!.outboxAt!
      this.more = true
    } else {
      this.scanFrom = new Date(started - this.scanMarginMs)
    }
    if (records.length > 0) this.more = true
    return records
  }

  async commit(records: SourceRecord<Value>[]): Promise<void> {
    if (this.options.deleteSent) {
      const ids = [...new Set(records.flatMap((r) => this.inFlight.get(r.id!)?.organizationId ?? []))]
      if (ids.length > 0) await this.orgs.deleteMany({ _id: { $in: ids } })
      for (const r of records) this.inFlight.delete(r.id!)
      this.stats.relayed += records.length
      return
    }
    const last = new Map<string, { sequence: number; eventId: string }>()
    for (const r of records) {
      const f = this.inFlight.get(r.id!)
      if (!f) continue
      const prev = last.get(f.organizationId)
      if (!prev || f.sequence > prev.sequence) last.set(f.organizationId, { sequence: f.sequence, eventId: r.id! })
    }
    const now = new Date()
    // Never back: a relay that lost the lease while its batch was in flight commits after the new
    // holder may have sent (and committed) more of a document's entries (a duplicate key: already further along).
    // One command for the batch (a deal registry commits many documents at once), in small chunks on FerretDB.
    const ops = [...last].map(([id, s]) => ({
      updateOne: {
        filter: { _id: id, $or: [{ sentSequence: { $lt: s.sequence } }, { sentSequence: { $exists: false } }] },
        update: { $set: { sentSequence: s.sequence, lastEventId: s.eventId, sentAt: now } },
        upsert: true,
      },
    }))
    try {
      await bulkWriteBounded(this.relay, ops)
    } catch (err) {
      const writeErrors = (err as { writeErrors?: unknown }).writeErrors
      const errors = Array.isArray(writeErrors) ? writeErrors : [err]
      if (!errors.every(isDuplicateKey)) throw err
    }
    for (const [id, s] of last) this.sent.set(id, Math.max(s.sequence, this.sent.get(id) ?? 0))
    for (const r of records) this.inFlight.delete(r.id!)
    this.stats.relayed += records.length
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer)
    this.renewTimer = undefined
    this.wake?.()
    await this.leaseOps // a renewal under way finishes before the lease is given back
    if (this.heldUntil > 0) {
      await this.leases.release(this.leaseId, this.options.holderId).catch(() => undefined)
      this.heldUntil = 0
    }
  }
}
