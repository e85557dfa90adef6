/**
 * What the worker reports of each held subscription (reportConnectorStatus): its state, positions,
 * lag, last error and snapshot, on change and every `statusIntervalMs`, by the lease holder only.
 */
import type { Logger } from '../../../common/logger.ts'
import type { Metrics } from '../../../common/metrics.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import type { ConnectorStatus } from '../../../control-plane/types.ts'
import type { DeliveryQueue } from '../delivery-queue.ts'
import type { SinkWorkerSettings } from './config.ts'
import type { Positions } from './positions.ts'
import { splitKey, type Run } from './run.ts'

export interface StatusOptions {
  controlPlane: ControlPlane
  settings: SinkWorkerSettings
  queue: DeliveryQueue
  positions: Positions
  metrics: Metrics | undefined
  log?: Logger
  leaseValid(): boolean
}

export class StatusReports {
  readonly #o: StatusOptions

  constructor(o: StatusOptions) {
    this.#o = o
  }

  reportRun(run: Run, changedOnly: boolean): Promise<void> {
    return this.reportRuns([run], changedOnly)
  }

  /** The statuses of runs that changed (or are due), in one command. */
  async reportRuns(runs: Run[], changedOnly: boolean): Promise<void> {
    if (!this.#o.leaseValid()) return
    const reports: Array<[string, ConnectorStatus]> = []
    for (const run of runs) {
      const status = this.#statusOf(run, changedOnly)
      if (status) reports.push([run.id, status])
    }
    if (reports.length === 1) await this.report(reports[0]![0], reports[0]![1])
    else await this.#o.controlPlane.reportConnectorStatuses(reports)
  }

  /** The run's status when it is to be reported (changed, or due), else null. */
  #statusOf(run: Run, changedOnly: boolean): ConnectorStatus | null {
    const { queue, positions: at, settings } = this.#o
    if (run.stopped) return null
    let state: ConnectorStatus['state'] = run.desiredState === 'paused' ? 'paused' : 'running'
    if (run.failure || (queue.has(run.id) && queue.stats(run.id).status === 'disabled')) state = 'failed'
    const positions = run.failure ? {} : at.of(run)
    let lag = 0
    for (const [k, v] of Object.entries(positions)) lag += Math.max(0, (at.high.get(k) ?? 0) - Number(v))
    const freshness = run.failure ? null : this.freshnessOf(run, positions)
    if (freshness !== null) {
      this.#o.metrics?.subscriptionFreshness.set({ subscription: run.id }, freshness)
      this.#objective(run, freshness)
    }
    const snapshot = run.snapshot ? run.snapshot.progress(positions) : run.lastSnapshot
    if (state === 'running' && snapshot && snapshot.phase !== 'live') state = 'snapshotting'
    const status = {
      ...this.status(state, run.generation, run.appliedResetId, positions, lag, run.lastError),
      snapshot,
      freshnessSeconds: freshness,
      freshnessBreachedSince: run.freshnessBreachedSince === null ? null : new Date(run.freshnessBreachedSince),
    }
    this.#o.metrics?.subscriptionLag.set({ subscription: run.id }, lag)
    const key = JSON.stringify([
      state,
      run.generation,
      run.appliedResetId,
      run.lastError?.message ?? null,
      snapshot?.phase ?? null,
      run.freshnessBreachedSince,
    ])
    if (changedOnly && key === run.lastReport) return null
    if (!changedOnly && key === run.lastReport && Date.now() - run.lastReportAt < settings.statusIntervalMs / 2)
      return null
    run.lastReport = key
    run.lastReportAt = Date.now()
    return status
  }

  /** A breach of the run's freshness objective begins or ends (reported at once: it is part of the change key). */
  #objective(run: Run, freshness: number): void {
    const slo = run.sub.deliveryPolicy.freshnessSloSeconds
    const breached = slo !== undefined && freshness > slo
    if (breached && run.freshnessBreachedSince === null) {
      run.freshnessBreachedSince = Date.now() - (freshness - slo) * 1000
      this.#o.log?.warn('freshness objective breached', { subscriptionId: run.id, freshness, slo })
    } else if (!breached && run.freshnessBreachedSince !== null) {
      this.#o.log?.info('freshness objective met again', {
        subscriptionId: run.id,
        freshness,
        slo: slo ?? null,
        breachedForSeconds: (Date.now() - run.freshnessBreachedSince) / 1000,
      })
      run.freshnessBreachedSince = null
    }
  }

  /**
   * How old the oldest record not yet delivered to the run is, in seconds (0: caught up), as of now:
   * per partition, the record at its position, whose time the delivery queue knows when it holds it and
   * the sampled offset times tell otherwise (offset-times.ts). A paused or parked subscription keeps its
   * position, so its figure grows with the wall clock while records wait; an idle topic reads 0.
   */
  freshnessOf(run: Run, positions: Record<string, string>, now = Date.now()): number {
    const { queue, positions: at } = this.#o
    const held = queue.has(run.id)
    let oldest = now
    for (const part of run.parts.values()) {
      const pos = Number(positions[part.key] ?? part.next)
      const head = held ? queue.oldestPending(run.id, part.topic, part.partition) : undefined
      let t: number | undefined
      if (head && head.offset <= pos) t = head.at
      else if (pos < (at.high.get(part.key) ?? 0)) t = at.times.timeOf(part.key, pos) ?? now
      if (t !== undefined && t < oldest) oldest = t
    }
    return Math.max(0, now - oldest) / 1000
  }

  status(
    state: ConnectorStatus['state'],
    generation: number,
    resetId: string | null,
    positions: Record<string, string>,
    lag: number | null,
    lastError: Run['lastError'],
  ): ConnectorStatus {
    return {
      state,
      workerId: this.#o.settings.workerId,
      positions: Object.entries(positions).map(([k, offset]) => {
        const [topic, partition] = splitKey(k)
        return { topic, partition, offset }
      }),
      lag,
      lastError,
      appliedGeneration: generation,
      appliedResetId: resetId,
      reportedAt: new Date(),
    }
  }

  report(id: string, status: ConnectorStatus): Promise<void> {
    return this.#o.controlPlane.reportConnectorStatus(id, status)
  }
}
