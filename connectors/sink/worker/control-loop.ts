/**
 * The worker's control: connector changes are polled (connectorsChangedSince) when the control plane's
 * change token moved, with a full reconciliation in the claim pass; pause and resume apply in place,
 * anything else (offset reset, restart, changed subscription) restarts the subscription's run from its
 * cursor. A run that leaves (its lease lost, handed over) stops its partner calls at once and stops in
 * its own turn. Status goes back on change and every `statusIntervalMs`; cursors are flushed every
 * `cursorFlushMs`.
 */
import type { ConnectorDoc } from '../../../control-plane/types.ts'
import type { SnapshotStore } from '../snapshot.ts'
import type { SinkStore } from '../store.ts'
import type { CatchUpReaders } from './catch-up.ts'
import type { WorkerCore } from './config.ts'
import type { Outcomes } from './outcomes.ts'
import { FULL_CLAIM_MS, type Ownership } from './ownership.ts'
import { MAX_CURSOR_WRITES_PER_FLUSH } from './positions.ts'
import type { RetryRequests } from './retry-requests.ts'
import { fenceCalls, serial, serialBg, type Run, type StopOptions } from './run.ts'

/** Records waiting below which a resume or an un-park delivers them all rather than collapse them. */
export const COLLAPSE_MIN_BACKLOG = 100
import type { Runs } from './runs.ts'
import type { SharedReader } from './shared-reader.ts'
import type { StatusReports } from './status.ts'

export interface ControlLoopOptions extends WorkerCore {
  store: SinkStore
  snapshotStore: SnapshotStore
  ownership: Ownership
  runs: Runs
  catchUp: CatchUpReaders
  shared: SharedReader
  retries: RetryRequests
  outcomes: Outcomes
  status: StatusReports
}

export class ControlLoop {
  readonly #o: ControlLoopOptions
  /** Connector changes after this were not seen yet (less a margin: connectorsChangedSince). */
  #since = new Date(0)
  /** The connectors' change token the last poll of changes started from, and when it ran. */
  #polled: { token: string | null; at: number } | null = null

  constructor(o: ControlLoopOptions) {
    this.#o = o
  }

  /** From the start on, changes are polled from a little before now. */
  pollFromNow(): void {
    this.#since = new Date(Date.now() - 5000)
  }

  /**
   * The run leaves this worker: no partner call starts from now on and those in flight are aborted
   * (sent again by whoever holds the lease), and its stop is queued in the run's turn, not awaited.
   */
  leave(run: Run, opts: StopOptions): void {
    run.leaving = true
    fenceCalls(run)
    serialBg(run, () => this.#o.runs.stop(run, opts), this.#o.log)
  }

  /**
   * `leave` for many runs (a hand-over to balance the workers): they stop together, once each one's earlier
   * operations are done, with one cursor write, status report and lease release for all of them.
   */
  leaveMany(runs: Run[], opts: StopOptions): void {
    for (const run of runs) {
      run.leaving = true
      fenceCalls(run)
    }
    const { log } = this.#o
    const stop = Promise.allSettled(runs.map((r) => r.ops)).then(() => this.#o.runs.stopMany(runs, opts))
    const settled = stop.catch((err: unknown) =>
      log.error('subscription control operation failed', { subscriptions: runs.length, error: err }),
    )
    for (const run of runs) run.ops = settled
  }

  /** Stops every run here, each in its turn (another process holds this worker id: ownership.ts). */
  async stopAll(): Promise<void> {
    const runs = [...this.#o.held.runs.values()]
    await Promise.all(
      runs.map((run) => serial(run, () => this.#o.runs.stop(run, { flush: false, release: false }), this.#o.log)),
    )
  }

  /** The first claim at start (nothing held yet); returns the ids claimed. */
  async firstClaim(): Promise<string[]> {
    const view = (await this.#o.ownership.claimView(true))!
    return this.#o.ownership.claimShare(view, await this.#connectors())
  }

  /**
   * Reconciles held runs with the control plane (deleted, stopped or changed connectors) and claims this
   * worker's share, when a full pass is due (ownership.ts, claimView): one read of every connector.
   */
  async claimPass(): Promise<void> {
    const { settings: s, held, ownership, store, log } = this.#o
    if (!ownership.leaseValid()) return
    const view = await ownership.claimView()
    if (!view) return
    const connectors = await this.#connectors()
    const byId = new Map(connectors.map((c) => [c._id, c]))
    for (const run of [...held.runs.values()]) {
      if (run.leaving) continue
      const c = byId.get(run.id)
      if (!c) serialBg(run, () => this.#removed(run), log)
      else if (c.generation !== run.generation) serialBg(run, () => this.#applyLatest(run), log)
    }
    const claimed = await ownership.claimShare(view, connectors)
    void this.#o.runs.startTracked(claimed)
    if (Math.random() < 0.05) await store.sweepWorkers(new Date(Date.now() - 10 * s.leaseTtlMs))
  }

  /** Every connector's id, generation and desired state. */
  #connectors(): Promise<Array<Pick<ConnectorDoc, '_id' | 'generation' | 'desiredState'>>> {
    return this.#o.deps.controlPlane.cols.connectors
      .find({}, { projection: { _id: 1, generation: 1, desiredState: 1 } })
      .toArray()
  }

  /**
   * Connector changes since the last pass, when the change token moved (or FULL_CLAIM_MS passed: a
   * change whose token write failed), then the retry requests.
   */
  async controlPass(): Promise<void> {
    const { deps, held, log } = this.#o
    const token = await deps.controlPlane.connectorsChangeToken()
    const last = this.#polled
    if (last === null || last.token !== token || Date.now() - last.at >= FULL_CLAIM_MS) {
      // the token before the read: a change signalled during it is polled again next time
      this.#polled = { token, at: Date.now() }
      const changed = await deps.controlPlane.connectorsChangedSince(new Date(this.#since.getTime() - 2000))
      for (const c of changed) {
        if (c.updatedAt > this.#since) this.#since = c.updatedAt
        const run = held.runs.get(c._id)
        if (run && c.generation !== run.generation) serialBg(run, () => this.#apply(run, c), log)
      }
    }
    await this.#o.retries.pass()
  }

  /** Cursors first, then the shared group's commit (the minimum of the attached subscriptions). */
  async flushPass(): Promise<void> {
    await this.#o.positions.writeCursors(
      [...this.#o.held.runs.values()].filter((r) => !r.stopped),
      false,
      MAX_CURSOR_WRITES_PER_FLUSH,
    )
    await this.#o.shared.commit()
  }

  /** Watermarks read again (for lag), then the statuses that changed or are due. */
  async statusPass(): Promise<void> {
    for (const t of this.#o.deps.topics) await this.#o.positions.refresh(t.name).catch(() => undefined)
    await this.#o.status.reportRuns([...this.#o.held.runs.values()], false)
  }

  /**
   * The connector or subscription is gone: the run stops, and what it leaves is removed, its delivery log too once
   * its last writes are in (the API removes the log when it deletes the subscription, maybe before some of them) and
   * the subscription is gone (no more than its connector: a deletion under way).
   */
  async #removed(run: Run): Promise<void> {
    const { deps, log } = this.#o
    log.info('subscription deleted: stopping it', { subscriptionId: run.id })
    await this.#o.runs.stop(run, { flush: false, release: true })
    await this.#o.store.deleteCursor(run.id).catch(() => undefined)
    await this.#o.snapshotStore.delete(run.id).catch(() => undefined)
    await this.#o.retries.settledFor(run.id)
    await this.#o.outcomes.settledFor(run.id)
    const cp = deps.controlPlane
    if (await cp.cols.subscriptions.findOne({ _id: run.id }, { projection: { _id: 1 } })) return
    // recorded first, as the API does: a removal this process does not finish is run by the periodic sweep
    await cp.logRemovals.request(run.id).catch((err: unknown) => {
      log.warn("a deleted subscription's delivery log removal was not recorded", { subscriptionId: run.id, error: err })
    })
    await cp.logRemovals.run()
  }

  /** Applies the connector as it is now (the claim pass saw its generation move). */
  async #applyLatest(run: Run): Promise<void> {
    const c = await this.#o.deps.controlPlane.cols.connectors.findOne({ _id: run.id })
    if (!c) return this.#removed(run)
    await this.#apply(run, c)
  }

  /** Applies a connector change: pause/resume in place; reset, restart or a changed subscription restart the run. */
  async #apply(run: Run, c: ConnectorDoc): Promise<void> {
    const { deps, runs, log } = this.#o
    if (run.stopped || c.generation === run.generation) return
    const sub = await deps.controlPlane.cols.subscriptions.findOne({ _id: run.id })
    if (!sub) return this.#removed(run)
    if (c.desiredState === 'stopped') {
      log.info('connector stopped', { subscriptionId: run.id })
      await runs.stop(run, { flush: true, release: true, state: 'stopped' })
      return
    }
    const resetId = c.offsetReset?.id ?? null
    const restartAt = c.restartRequestedAt?.getTime() ?? null
    if (
      sub.version !== run.sub.version ||
      (resetId !== run.resetId && resetId !== run.appliedResetId) ||
      restartAt !== run.restartAt ||
      run.failure
    ) {
      log.info('restarting subscription', {
        subscriptionId: run.id,
        reset: resetId !== run.resetId,
        restart: restartAt !== run.restartAt,
        changed: sub.version !== run.sub.version,
      })
      await runs.stop(run, { flush: true, release: false })
      await runs.start(run.id)
      return
    }
    run.generation = c.generation
    if (c.desiredState === 'running' && run.desiredState === 'paused' && this.#collapses(run)) {
      log.info('subscription resumed with a backlog to collapse: restarting it', { subscriptionId: run.id })
      await runs.stop(run, { flush: true, release: false })
      await runs.start(run.id, undefined, undefined, { collapse: true })
      return
    }
    if (c.desiredState !== run.desiredState) {
      run.desiredState = c.desiredState
      if (c.desiredState === 'paused') this.#pause(run)
      else this.#resume(run)
      await this.#o.positions.writeCursors([run], true)
    }
    await this.#o.status.reportRun(run, true)
  }

  /**
   * The run's endpoint answers again after it was parked: with collapseBacklog and records waiting,
   * the run restarts as a collapse, as on a resume (the record that un-parked it is delivered already).
   */
  unparked(id: string): void {
    const run = this.#o.held.runs.get(id)
    if (!run || run.stopped || !this.#collapses(run)) return
    const { runs, log } = this.#o
    serialBg(
      run,
      async () => {
        if (run.stopped || !this.#collapses(run)) return
        log.info('subscription un-parked with a backlog to collapse: restarting it', { subscriptionId: run.id })
        await runs.stop(run, { flush: true, release: false })
        await runs.start(run.id, undefined, undefined, { collapse: true })
      },
      log,
    )
  }

  /**
   * Whether resuming the run collapses its backlog: it asked for it (deliveryPolicy.collapseBacklog,
   * state topics only) and at least COLLAPSE_MIN_BACKLOG records wait beyond its positions (for fewer, a
   * restart and a scan cost more than they save).
   */
  #collapses(run: Run): boolean {
    if (run.failure || run.sub.deliveryPolicy.collapseBacklog !== true) return false
    const { positions } = this.#o
    let waiting = 0
    for (const [k, v] of Object.entries(positions.of(run)))
      waiting += Math.max(0, (positions.high.get(k) ?? 0) - Number(v))
    return waiting >= COLLAPSE_MIN_BACKLOG
  }

  #pause(run: Run): void {
    if (run.failure) return
    this.#o.queue.pause(run.id)
    this.#o.positions.detachAll(run)
    void this.#o.catchUp.stop(run)
    this.#o.log.info('subscription paused', { subscriptionId: run.id })
  }

  #resume(run: Run): void {
    if (run.failure) return
    this.#o.queue.resume(run.id)
    this.#o.queue.enable(run.id)
    this.#o.log.info('subscription resumed', { subscriptionId: run.id })
  }
}
