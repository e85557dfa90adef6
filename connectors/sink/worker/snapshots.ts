/**
 * A run's snapshot bootstrap (snapshot.ts): the scan for the latest record of every key, which counts
 * against maxCatchUpReaders, then the delivery of those records before the run goes live.
 */
import { randomUUID } from 'node:crypto'
import type { Admin } from '../../../common/kafka/index.ts'
import type { Logger } from '../../../common/logger.ts'
import type { OffsetReset } from '../../../control-plane/types.ts'
import { sleep } from '../../../common/timers.ts'
import { scanLatest } from '../scan.ts'
import { finishedProgress, snapshotDecision, SnapshotRun, type SnapshotDoc, type SnapshotStore } from '../snapshot.ts'
import { tpKey } from '../store.ts'
import type { SinkWorkerDeps, SinkWorkerSettings } from './config.ts'
import type { Positions } from './positions.ts'
import { serialBg, splitKey, type HeldRuns, type ReaderSlots, type Run } from './run.ts'

export interface SnapshotBootstrapOptions {
  deps: SinkWorkerDeps
  settings: SinkWorkerSettings
  store: SnapshotStore
  held: HeldRuns
  positions: Positions
  slots: ReaderSlots
  log: Logger
  admin(): Admin
  leaseValid(): boolean
  /** Reports the run's status when it changed (status.ts). */
  report(run: Run): Promise<void>
}

/**
 * A collapse waits for the shared reader to reach the high watermarks as long as it moves towards them (it reads
 * what a scan would read again, and a busy worker may be seconds behind a burst), for INDEX_WAIT_MS at most; when it
 * has not moved for INDEX_STALL_MS, the collapse scans instead.
 */
const INDEX_WAIT_MS = 30_000
const INDEX_STALL_MS = 2000

export class SnapshotBootstrap {
  readonly #o: SnapshotBootstrapOptions
  /** Collapses whose winners came from the shared reader's index (no scan), since the start. */
  collapsesWithoutScan = 0

  constructor(o: SnapshotBootstrapOptions) {
    this.#o = o
  }

  /**
   * Starts a new snapshot, resumes an unfinished one, or only loads the last one for the status. Before the cursor is
   * written.
   */
  async prepare(
    run: Run,
    a: {
      /** The subscription's snapshot document when it was read already (undefined: read here). */
      existing?: SnapshotDoc | null
      hasCursor: boolean
      cursorResetId: string | null
      applyingReset: OffsetReset | null
      positions: Map<string, number>
      /** Collapse the backlog from the positions (control-loop.ts, a resume with collapseBacklog). */
      collapse?: boolean
    },
  ): Promise<void> {
    const { store, settings, log } = this.#o
    const existing = a.existing !== undefined ? a.existing : await store.get(run.id)
    const decision = snapshotDecision({
      startFrom: run.sub.startFrom,
      hasCursor: a.hasCursor,
      cursorResetId: a.cursorResetId,
      applyingReset: a.applyingReset,
      existing,
      collapse: a.collapse === true,
    })
    let doc: SnapshotDoc
    let indexed: Map<string, Float64Array> | undefined
    if (decision === 'new') {
      const highs: Record<string, string> = {}
      for (const t of run.topics)
        for (const o of await this.#o.admin().fetchTopicOffsets(t)) highs[tpKey(t, o.partition)] = o.high
      // a collapse the shared reader's index covers needs no scan (latest-index.ts)
      if (a.collapse && !a.applyingReset) indexed = await this.#fromIndex(a.positions, highs)
      const now = new Date()
      doc = {
        _id: run.id,
        snapshotId: `snp_${randomUUID().replaceAll('-', '').slice(0, 20)}`,
        resetId: a.applyingReset?.id ?? (a.collapse ? a.cursorResetId : null),
        ...(a.collapse && !a.applyingReset ? { kind: 'collapse' as const } : {}),
        highs,
        phase: 'scanning',
        total: null,
        done: 0,
        startedAt: now,
        completedAt: null,
        workerId: settings.workerId,
        updatedAt: now,
      }
      await store.put(doc) // before the cursor: a cursor of this start always has its snapshot document
      log.info(doc.kind === 'collapse' ? 'backlog collapse started' : 'snapshot started', {
        subscriptionId: run.id,
        snapshotId: doc.snapshotId,
        highs,
      })
    } else if (decision === 'resume') {
      doc = { ...existing!, phase: 'scanning', workerId: settings.workerId }
      log.info('snapshot resumed from the cursor', {
        subscriptionId: run.id,
        snapshotId: doc.snapshotId,
        done: doc.done,
        total: doc.total,
      })
    } else {
      if (existing && a.applyingReset)
        await store.delete(run.id) // another reset replaces the snapshot
      else if (existing?.phase === 'live') run.lastSnapshot = finishedProgress(existing)
      return
    }
    run.snapshot = new SnapshotRun(doc, a.positions)
    if (indexed) {
      run.snapshot.scannedAll(indexed)
      this.collapsesWithoutScan++
      log.info('backlog collapse: the latest record of every key from the shared reader, no scan', {
        subscriptionId: run.id,
        snapshotId: doc.snapshotId,
        keys: doc.total,
      })
    }
  }

  /**
   * A collapse's winners from the shared reader's index (latest-index.ts): per partition, the latest record of each
   * key from the run's start up to the captured high watermark, once the shared reader has read up to it (waited
   * for while it moves, INDEX_WAIT_MS at most). A key whose latest record the shared reader read is at or above the
   * high watermark has none below it here: that record is delivered after the collapse, as everything from the high
   * watermark on is.
   * Undefined when the index does not cover every partition from the run's start (the collapse scans then).
   */
  async #fromIndex(
    starts: Map<string, number>,
    highs: Record<string, string>,
  ): Promise<Map<string, Float64Array> | undefined> {
    const { positions } = this.#o
    const behind = () => {
      let n = 0
      for (const [k, h] of Object.entries(highs)) n += Math.max(0, Number(h) - (positions.sharedNext.get(k) ?? -1))
      return n
    }
    const until = Date.now() + INDEX_WAIT_MS
    let last = behind()
    let movedAt = Date.now()
    while (last > 0 && Date.now() < until && Date.now() - movedAt < INDEX_STALL_MS) {
      await sleep(50)
      const now = behind()
      if (now < last) movedAt = Date.now()
      last = now
    }
    if (last > 0) return undefined
    const winners = new Map<string, Float64Array>()
    for (const [k, h] of Object.entries(highs)) {
      const high = Number(h)
      const w = positions.latest.winners(k, Math.min(starts.get(k) ?? high, high), high)
      if (!w) return undefined
      winners.set(k, w)
    }
    return winners.size > 0 ? winners : undefined
  }

  /** The catch-up pass for a snapshotting run: true while it scans (no reader feeds it yet). */
  pass(run: Run): boolean {
    const { slots, log } = this.#o
    const snap = run.snapshot!
    if (snap.phase === 'scanning') {
      // a scan is a reader of its own: it counts against maxCatchUpReaders
      if (!snap.scan && run.desiredState === 'running' && Date.now() >= snap.retryAt && slots.free)
        this.#startScan(run, snap)
      return true
    }
    if (snap.phase === 'delivering' && snap.complete(this.#o.positions.of(run))) {
      snap.finished()
      run.snapshot = null
      this.#o.held.changed()
      run.lastSnapshot = finishedProgress(snap.doc)
      log.info('snapshot complete: live from here on', {
        subscriptionId: run.id,
        snapshotId: snap.doc.snapshotId,
        keys: snap.doc.total,
      })
      this.#saveAndReport(run, snap.doc)
    }
    return false
  }

  #startScan(run: Run, snap: SnapshotRun): void {
    const { deps, settings, slots, log } = this.#o
    snap.scanned = 0
    const ranges = [...snap.highs].map(([k, high]) => {
      const [topic, partition] = splitKey(k)
      return { topic, partition, from: Math.min(high, run.parts.get(k)?.next ?? high), high }
    })
    const scan = scanLatest({
      kafka: deps.kafka,
      groupId: `${settings.groupId}.snapshot.${run.id}`,
      ranges,
      deliverable: (topic, m) => {
        const h = m.headers?.ce_type
        const type = h === undefined ? undefined : String(Array.isArray(h) ? h[h.length - 1] : h)
        return run.wanted.has(topic) || type === undefined || run.wanted.has(type)
      },
      tombstones: snap.doc.kind === 'collapse',
      onScanned: (n) => (snap.scanned += n),
      logger: log,
    })
    snap.scan = scan
    slots.used++
    scan.result.then(
      (winners) => {
        slots.used--
        if (run.stopped || run.snapshot !== snap || snap.scan !== scan) return
        snap.scan = null
        snap.scannedAll(winners)
        log.info('snapshot scanned: delivering the latest record of every key', {
          subscriptionId: run.id,
          snapshotId: snap.doc.snapshotId,
          keys: snap.doc.total,
          scanned: snap.scanned,
        })
        this.#saveAndReport(run, snap.doc)
      },
      (err: unknown) => {
        slots.used--
        if (snap.scan === scan) snap.scan = null
        snap.retryAt = Date.now() + 5000
        if (!run.stopped) log.warn('snapshot scan failed; it starts again', { subscriptionId: run.id, error: err })
      },
    )
  }

  /** Saves the snapshot's progress and reports the run, in the run's turn. */
  #saveAndReport(run: Run, doc: SnapshotDoc): void {
    serialBg(
      run,
      async () => {
        await this.#save(run, doc)
        await this.#o.report(run)
      },
      this.#o.log,
    )
  }

  async #save(run: Run, doc: SnapshotDoc): Promise<void> {
    if (run.stopped || !this.#o.leaseValid()) return
    await this.#o.store.put({ ...doc, workerId: this.#o.settings.workerId, updatedAt: new Date() })
  }
}
