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
import type { HealthEvents, ObjectiveChange } from './health.ts'
import type { Positions } from './positions.ts'
import { splitKey, type Run } from './run.ts'

export interface StatusOptions {
  controlPlane: ControlPlane
  settings: SinkWorkerSettings
  queue: DeliveryQueue
  positions: Positions
  metrics: Metrics | undefined
  log?: Logger
  /** Where breaches and recoveries of freshness objectives go as events (absent: none are written). */
  health?: HealthEvents
  leaseValid(): boolean
}

/**
 * Unchanged statuses (their positions, lag and freshness) re-reported per second at most: every
 * `statusIntervalMs` (5 s) up to 500 subscriptions, beyond that each in turn (10,000: every 100 s).
 * Changes are reported at once. On FerretDB a status write costs about 2 ms (a transaction of its own):
 * 10,000 every 5 s would take the store's time four times over.
 */
export const MAX_STATUS_REFRESH_PER_SECOND = 100

/** Runs whose status is computed between two turns of the event loop. */
const STATUS_SLICE = 500

/** A status to report: the run, what it reports, its change key, and whether that changed. */
interface Report {
  run: Run
  status: ConnectorStatus
  key: string
  changed: boolean
}

export class StatusReports {
  readonly #o: StatusOptions

  constructor(o: StatusOptions) {
    this.#o = o
  }

  reportRun(run: Run, changedOnly: boolean): Promise<void> {
    return this.reportRuns([run], changedOnly)
  }

  /**
   * The statuses of runs that changed (or are due), in a few commands; `fresh`: runs most likely without a
   * stored status (their first report: an insert).
   */
  async reportRuns(runs: Run[], changedOnly: boolean, fresh = false): Promise<void> {
    if (!this.#o.leaseValid()) return
    const changes: ObjectiveChange[] = []
    const picked: Report[] = []
    let due: Report[] = []
    for (let i = 0; i < runs.length; i++) {
      // 10,000 runs take the loop some 100 ms: in slices, so that deliveries go on in between
      if (i > 0 && i % STATUS_SLICE === 0) await new Promise((resolve) => setImmediate(resolve))
      const report = this.#statusOf(runs[i]!, changedOnly, changes)
      if (report) (report.changed ? picked : due).push(report)
    }
    // unchanged statuses refreshed: at most MAX_STATUS_REFRESH_PER_SECOND, those reported longest ago first
    const max = Math.max(1, Math.round((MAX_STATUS_REFRESH_PER_SECOND * this.#o.settings.statusIntervalMs) / 1000))
    if (due.length > max) due = due.sort((a, b) => a.run.lastReportAt - b.run.lastReportAt).slice(0, max)
    const now = Date.now()
    const chosen = [...picked, ...due].filter((r) => !r.run.stopped) // stopped meanwhile: its stop reports
    for (const r of chosen) {
      r.run.lastReport = r.key
      r.run.lastReportAt = now
    }
    let reports = chosen.map((r) => [r.run.id, r.status] as [string, ConnectorStatus])
    if (changes.length > 0) {
      try {
        await this.#o.health?.publish(changes)
        for (const c of changes) this.#applied(c)
      } catch (err) {
        // not applied: the next report sees the change again (and its run's status waits for it)
        this.#o.log?.warn('freshness objective events not written; trying again at the next report', { error: err })
        const held = new Set(changes.map((c) => c.run.id))
        for (const c of changes) c.run.lastReport = ''
        reports = reports.filter(([id]) => !held.has(id))
      }
    }
    if (reports.length === 0) return
    if (reports.length === 1) await this.report(reports[0]![0], reports[0]![1])
    else await this.#o.controlPlane.reportConnectorStatuses(reports, fresh)
  }

  /** The run's status when it is to be reported (changed, or due), else null. */
  #statusOf(run: Run, changedOnly: boolean, changes: ObjectiveChange[]): Report | null {
    const { queue, positions: at, settings } = this.#o
    if (run.stopped) return null
    let state: ConnectorStatus['state'] = run.desiredState === 'paused' ? 'paused' : 'running'
    if (run.failure || (queue.has(run.id) && queue.stats(run.id).status === 'disabled')) state = 'failed'
    const positions = run.failure ? {} : at.of(run)
    let lag = 0
    for (const [k, v] of Object.entries(positions)) lag += Math.max(0, (at.high.get(k) ?? 0) - Number(v))
    const freshness = run.failure ? null : this.freshnessOf(run, positions)
    let breachedSince = run.freshnessBreachedSince
    if (freshness !== null) {
      this.#o.metrics?.subscriptionFreshness.set({ subscription: run.id }, freshness)
      const change = this.#objective(run, freshness)
      if (change) {
        changes.push(change)
        breachedSince = change.status === 'BREACHED' ? change.breachedSince : null
      }
    }
    const snapshot = run.snapshot ? run.snapshot.progress(positions) : run.lastSnapshot
    if (state === 'running' && snapshot && snapshot.phase !== 'live') state = 'snapshotting'
    const status = {
      ...this.status(state, run.generation, run.appliedResetId, positions, lag, run.lastError),
      snapshot,
      freshnessSeconds: freshness,
      freshnessBreachedSince: breachedSince === null ? null : new Date(breachedSince),
    }
    this.#o.metrics?.subscriptionLag.set({ subscription: run.id }, lag)
    const key = JSON.stringify([
      state,
      run.generation,
      run.appliedResetId,
      run.lastError?.message ?? null,
      snapshot?.phase ?? null,
      breachedSince,
    ])
    const changed = key !== run.lastReport
    if (changedOnly && !changed) return null
    if (!changed && Date.now() - run.lastReportAt < settings.statusIntervalMs / 2) return null
    return { run, status, key, changed }
  }

  /**
   * A breach of the run's freshness objective begins or ends (reported at once: it is part of the change key), or
   * null. Applied to the run once its events are written (#applied).
   */
  #objective(run: Run, freshness: number): ObjectiveChange | null {
    const slo = run.sub.deliveryPolicy.freshnessSloSeconds
    const breached = slo !== undefined && freshness > slo
    const at = Date.now()
    const common = { run, freshnessSeconds: freshness, objectiveSeconds: slo ?? null, at }
    if (breached && run.freshnessBreachedSince === null)
      return { ...common, status: 'BREACHED', breachedSince: Math.round(at - (freshness - slo) * 1000) }
    if (!breached && run.freshnessBreachedSince !== null)
      return { ...common, status: 'RECOVERED', breachedSince: run.freshnessBreachedSince }
    return null
  }

  #applied(c: ObjectiveChange): void {
    const { run } = c
    if (c.status === 'BREACHED') {
      run.freshnessBreachedSince = c.breachedSince
      this.#o.log?.warn('freshness objective breached', {
        subscriptionId: run.id,
        freshness: c.freshnessSeconds,
        slo: c.objectiveSeconds,
      })
    } else {
      this.#o.log?.info('freshness objective met again', {
        subscriptionId: run.id,
        freshness: c.freshnessSeconds,
        slo: c.objectiveSeconds,
        breachedForSeconds: (c.at - c.breachedSince) / 1000,
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
