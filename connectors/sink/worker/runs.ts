/**
 * Starting and stopping a held subscription's run: its sink, its positions (an offset reset, its
 * cursor, or where it starts), its queue, its parts on the shared stream or detached; and, when it
 * stops, its partner calls aborted first, its catch-up reader, its cursor, status and lease.
 */
import { SyndicationError } from '../../../common/errors.ts'
import { ownDeliveryPolicy } from '../../../control-plane/delivery-policy.ts'
import { pinsOf } from '../../../control-plane/schema-pins.ts'
import type { SubscriptionDoc } from '../../../control-plane/types.ts'
import { valueSubject } from '../../../schemas/topics.ts'
import type { SchedulePolicy } from '../../retry.ts'
import type { DeliveryDefaults } from '../settings.ts'
import { findByIds } from '../../../control-plane/store.ts'
import type { SnapshotStore } from '../snapshot.ts'
import { tpKey, type CursorDoc, type SinkStore } from '../store.ts'
import type { CatchUpReaders } from './catch-up.ts'
import type { WorkerCore } from './config.ts'
import type { Delivery } from './delivery.ts'
import type { GrantsCache } from './grants-cache.ts'
import type { Outcomes } from './outcomes.ts'
import { newRun, STOPPED, type Preloaded, type Run, type StopOptions } from './run.ts'
import type { SnapshotBootstrap } from './snapshots.ts'
import type { StatusReports } from './status.ts'

export interface RunsOptions extends WorkerCore {
  store: SinkStore
  snapshotStore: SnapshotStore
  grants: GrantsCache
  outcomes: Outcomes
  delivery: Delivery
  catchUp: CatchUpReaders
  snapshots: SnapshotBootstrap
  status: StatusReports
  leaseValid(): boolean
}

export class Runs {
  readonly #o: RunsOptions

  constructor(o: RunsOptions) {
    this.#o = o
  }

  /**
   * Starts claimed subscriptions together: their subscriptions, connectors, cursors, snapshot documents
   * and their partners' grants are read in a query each, their first cursors and statuses written in
   * a few commands (a worker claiming 10,000 subscriptions would otherwise spend minutes in round trips).
   */
  startTracked(ids: string[], cursors?: Map<string, CursorDoc>): Promise<void> {
    const { held, store, settings, positions, status, log } = this.#o
    if (ids.length === 0) return Promise.resolve()
    const release = async (id: string, err: unknown) => {
      log.error('subscription could not be started; releasing it', { subscriptionId: id, error: err })
      await store.release(id, settings.workerId).catch(() => undefined)
    }
    const all = (async () => {
      let pre: Map<string, Preloaded>
      try {
        pre = await this.#preload(ids, cursors)
      } catch (err) {
        await Promise.all(ids.map((id) => release(id, err)))
        return
      }
      const started: Run[] = []
      await Promise.all(ids.map((id) => this.start(id, pre.get(id), started).catch((err: unknown) => release(id, err))))
      // Without a stored cursor, most likely without a stored status either: their first writes are
      // inserts. A stored cursor is written again only where the positions moved (a hand-over of 5,000
      // runs from a worker that just wrote them rewrites none).
      const live = started.filter((r) => !r.stopped)
      const fresh = live.filter((r) => !pre.get(r.id)?.cursor)
      const known = live.filter((r) => pre.get(r.id)?.cursor)
      for (const [runs, isFresh] of [
        [known, false],
        [fresh, true],
      ] as const) {
        await positions
          .writeCursors(runs, isFresh, Infinity, isFresh)
          .catch((err: unknown) => log.warn('first cursor write failed; the next flush writes them', { error: err }))
        await status
          .reportRuns(runs, true, isFresh)
          .catch((err: unknown) => log.warn('status report failed; the next status pass reports', { error: err }))
      }
    })()
    const p: Promise<void> = all.finally(() => {
      for (const id of ids) if (held.starting.get(id) === p) held.starting.delete(id)
    })
    for (const id of ids) held.starting.set(id, p)
    return p
  }

  async #preload(ids: string[], cursors?: Map<string, CursorDoc>): Promise<Map<string, Preloaded>> {
    const cp = this.#o.deps.controlPlane
    const [subs, conns, curs, snapshots] = await Promise.all([
      findByIds(cp.cols.subscriptions, ids),
      findByIds(cp.cols.connectors, ids),
      cursors ?? this.#o.store.getCursors(ids),
      this.#o.snapshotStore.getMany(ids),
    ])
    await this.#o.grants.load([...new Set(subs.map((d) => d.partnerId))])
    const subById = new Map(subs.map((d) => [d._id, d]))
    const connById = new Map(conns.map((d) => [d._id, d]))
    return new Map(
      ids.map((id) => [
        id,
        {
          sub: subById.get(id) ?? null,
          conn: connById.get(id) ?? null,
          cursor: curs.get(id) ?? null,
          snapshot: snapshots.get(id) ?? null,
        },
      ]),
    )
  }

  /**
   * Starts one subscription. With `pre` (startTracked), its documents were read in a batch and
   * the run is pushed to `started` for batched first writes; without, it reads and writes alone.
   * `collapse`: its backlog goes as the latest record of each key (a resume with collapseBacklog).
   */
  start(id: string, pre?: Preloaded, started?: Run[], opts: { collapse?: boolean } = {}): Promise<void> {
    const held = this.#o.held
    const p = this.#start(id, pre, started, opts)
    if (held.starting.has(id)) return p
    // a restart (control-loop.ts): its lease is not stray while the run is away (ownership.ts)
    const tracked: Promise<void> = p.finally(() => {
      if (held.starting.get(id) === tracked) held.starting.delete(id)
    })
    held.starting.set(id, tracked)
    return tracked
  }

  async #start(id: string, pre?: Preloaded, started?: Run[], opts: { collapse?: boolean } = {}): Promise<void> {
    const { deps: d, settings, store, held, queue, positions, status, log } = this.#o
    const cp = d.controlPlane
    const [stored, conn] = pre
      ? [pre.sub, pre.conn]
      : await Promise.all([cp.cols.subscriptions.findOne({ _id: id }), cp.cols.connectors.findOne({ _id: id })])
    // what the subscription set itself (a frozen copy of old defaults, not migrated yet, counts as inherited)
    const sub = stored && { ...stored, deliveryPolicy: ownDeliveryPolicy(stored) }
    if (!sub || !conn) {
      await store.release(id, settings.workerId)
      return
    }
    if (conn.desiredState === 'stopped') {
      await status.report(id, status.status('stopped', conn.generation, conn.offsetReset?.id ?? null, {}, null, null))
      await store.release(id, settings.workerId)
      return
    }
    const topics = d.topics
      .filter((t) => sub.eventTypes.includes(t.name) || t.eventTypes.some((e) => sub.eventTypes.includes(e)))
      .map((t) => t.name)
    const run = newRun(id, sub, conn, topics)
    try {
      for (const [eventType, version] of Object.entries(pinsOf(sub))) {
        const spec = d.topics.find((t) => t.name === eventType || t.eventTypes.includes(eventType))
        if (spec) run.readers.set(spec.name, await d.serde.readerFor(valueSubject(spec.name), version))
      }
      run.sink = await d.createSink(sub, {
        subscriptionId: id,
        partnerId: sub.partnerId,
        logger: log.child({ subscriptionId: id }),
        onAttempt: (report) => this.#o.outcomes.onAttempt(run, report),
      })
    } catch (err) {
      if (err instanceof SyndicationError && err.retriable) throw err
      run.failure = {
        code: err instanceof SyndicationError ? err.code : 'INTERNAL',
        message: err instanceof Error ? err.message : String(err),
      }
      run.lastError = { ...run.failure, at: new Date() }
      held.runs.set(id, run)
      log.error('subscription cannot run: its sink does not start', { subscriptionId: id, error: err })
      await status.reportRun(run, true)
      return
    }

    // Positions: an offset reset not applied yet, else the cursor, else where the subscription starts.
    const cursor = pre ? pre.cursor : await store.getCursor(id)
    const reset = conn.offsetReset
    let at: Map<string, number>
    const applyingReset = reset && cursor?.appliedResetId !== reset.id ? reset : null
    if (reset && cursor?.appliedResetId !== reset.id) {
      at = await positions.reset(topics, reset)
      run.appliedResetId = reset.id
      log.info('offset reset applied', { subscriptionId: id, to: reset.to, timestamp: reset.timestamp })
    } else {
      run.appliedResetId = cursor?.appliedResetId ?? null
      at = positions.fromCursor(sub, topics, cursor)
      // as stored: the first write skips it unless the positions moved (retention, a partition added)
      if (cursor) run.lastCursor = JSON.stringify([cursor.positions, cursor.appliedResetId])
    }

    await this.#o.snapshots.prepare(run, {
      existing: pre ? pre.snapshot : undefined,
      hasCursor: cursor !== null,
      cursorResetId: cursor?.appliedResetId ?? null,
      applyingReset,
      positions: at,
      collapse: opts.collapse === true,
    })
    if (!pre || !this.#o.grants.fresh(sub.partnerId)) await this.#o.grants.load([sub.partnerId])

    const policy = deliveryPolicy(sub, d.defaults)
    const concurrency = sub.deliveryPolicy?.concurrency ?? d.defaults.concurrency
    queue.addSubscription({
      id,
      policy,
      // a batching sink (REST) gathers concurrent keys into one request: let batchSize keys be in flight
      concurrency: run.sink?.batchSize !== undefined ? Math.max(concurrency, run.sink.batchSize) : concurrency,
      parkAfterFailures: d.defaults.parkAfterFailures,
      disableAfterMs: Math.min(
        d.defaults.disableAfterMs,
        (sub.deliveryPolicy?.disableAfterFailingSeconds ?? Infinity) * 1000,
      ),
      rateLimitPerSecond: sub.deliveryPolicy?.rateLimitPerSecond ?? 0,
      deliver: (record, { signal }) => this.#o.delivery.deliver(run, record, signal),
    })
    const paused = conn.desiredState === 'paused'
    if (paused) queue.pause(id)
    for (const t of topics) {
      for (const p of positions.partitions.get(t) ?? []) {
        const k = tpKey(t, p)
        const pos = at.get(k) ?? 0
        queue.skip(id, t, p, pos - 1) // the queue's floor: nothing below the cursor is offered again
        const shared = positions.sharedNext.get(k)
        run.parts.set(k, {
          topic: t,
          partition: p,
          key: k,
          next: pos,
          attached: !paused && !run.snapshot && shared !== undefined && pos >= shared,
        })
      }
      let set = held.byTopic.get(t)
      if (!set) held.byTopic.set(t, (set = new Set()))
      set.add(run)
    }
    held.changed()
    held.runs.set(id, run)
    if (run.snapshot || [...run.parts.values()].some((p) => !p.attached)) held.behind.add(run)
    if (started) started.push(run)
    else {
      await positions.writeCursors([run], true)
      await status.reportRun(run, true)
    }
    log.info('subscription running', {
      subscriptionId: id,
      state: conn.desiredState,
      detached: [...run.parts.values()].filter((p) => !p.attached).length,
    })
  }

  /**
   * Stops a run: its catch-up reader, its queue (in-flight calls are aborted: they count as not
   * delivered), and writes its cursor (unless the lease is gone).
   */
  stop(run: Run, opts: StopOptions): Promise<void> {
    return this.stopMany([run], opts)
  }

  /**
   * Stops runs together: one cursor write, one status report and one lease release for all of them.
   * First of all, in one tick, the partner calls in flight are aborted (a subscription handed over
   * must not be called by two workers at once; those calls count as not delivered: the positions are
   * taken before) and the readers offer the runs nothing more.
   */
  async stopMany(runs: Run[], opts: StopOptions): Promise<void> {
    const { deps, settings, store, held, queue, positions, status, log, leaseValid } = this.#o
    const stopping = runs.filter((r) => !r.stopped)
    if (stopping.length === 0) return
    for (const run of stopping) {
      run.stopped = true
      if (queue.has(run.id)) {
        run.finalPositions = positions.of(run)
        queue.removeSubscription(run.id)
      }
      run.calls.abort(STOPPED)
      for (const t of run.topics) held.byTopic.get(t)?.delete(run)
    }
    held.changed()
    this.#o.delivery.wake() // held deliveries of these runs see their abort
    await Promise.all(
      stopping.map(async (run) => {
        await run.snapshot?.scan?.abort()
        await this.#o.catchUp.stop(run)
      }),
    )
    const flushable = stopping.filter((r) => !r.failure)
    // the cursors that moved since they were last written (a hand-over of 5,000 idle runs writes none)
    if (opts.flush && leaseValid() && flushable.length > 0)
      await positions
        .writeCursors(flushable)
        .catch((err: unknown) =>
          log.warn('cursor write failed on stop', { subscriptions: flushable.length, error: err }),
        )
    if (opts.state && leaseValid()) {
      const state = opts.state
      const reports = stopping.map(
        (run) =>
          [
            run.id,
            status.status(
              state,
              run.generation,
              run.appliedResetId,
              run.failure ? {} : positions.of(run),
              null,
              run.lastError,
            ),
          ] as const,
      )
      await deps.controlPlane.reportConnectorStatuses(reports).catch(() => undefined)
    }
    await Promise.all(stopping.flatMap((run) => (run.sink ? [run.sink.stop().catch(() => undefined)] : [])))
    for (const run of stopping) {
      held.runs.delete(run.id)
      // the worker that holds it next reports its figures: no stale series here
      deps.metrics?.subscriptionLag.remove({ subscription: run.id })
      deps.metrics?.subscriptionFreshness.remove({ subscription: run.id })
    }
    if (opts.release)
      await store
        .releaseMany(
          stopping.map((r) => r.id),
          settings.workerId,
        )
        .catch(() => undefined)
  }
}

/** The subscription's retry schedule (seconds in the control plane) as the queue's policy. */
export function deliveryPolicy(sub: SubscriptionDoc, defaults: DeliveryDefaults): SchedulePolicy {
  const seconds = sub.deliveryPolicy?.retrySchedule
  if (!Array.isArray(seconds) || seconds.length === 0) return defaults.policy
  return { ...defaults.policy, delaysMs: seconds.map((s) => Math.max(0, s * 1000)) }
}
