/**
 * The sink worker: moves records from Kafka to the subscriptions' sinks (docs/architecture.md "Positions
 * at scale", docs/sink-workers.md). This class puts the parts of worker/ together and runs their passes:
 *
 *  - OWNERSHIP (worker/ownership.ts): the worker id, the leases of its share of the subscriptions,
 *    held while its heartbeat is renewed, and the lease fence.
 *  - The SHARED reader (worker/shared-reader.ts): one consumer per process reads every partition
 *    once and offers each record to the held subscriptions attached on its partition.
 *  - CATCH-UP readers (worker/catch-up.ts): a subscription behind the shared stream is detached and
 *    fed by a reader of its own until it catches up; the readers' slots are shared in turns. A
 *    snapshot bootstrap scans first (worker/snapshots.ts).
 *  - POSITIONS (worker/positions.ts): per subscription, below its oldest undelivered record; its
 *    cursor is the durable truth, written by the lease holder after delivery.
 *  - DELIVERY (worker/delivery.ts): entitlements applied at delivery time on every path to a sink
 *    (GRANTS cache: worker/grants-cache.ts), and the holds while the control plane does not answer.
 *  - OUTCOMES (worker/outcomes.ts): every attempt and dead letter to the delivery log (with
 *    back-pressure), dead letters to their topic; retry requests (worker/retry-requests.ts).
 *  - The CONTROL loop (worker/control-loop.ts, worker/runs.ts, worker/status.ts): claims, connector
 *    changes, runs started and stopped (a stopping run aborts its partner calls first), statuses.
 *
 * Every part reads and writes the runs it holds (worker/run.ts) on one event loop; the passes below
 * run on timers, one of each kind at a time.
 */
import { randomUUID } from 'node:crypto'
import { type Admin, createAdmin, createProducer, createTopicsReady, type Producer } from '../../common/kafka/index.ts'
import type { Logger } from '../../common/logger.ts'
import { deadLetterTopicConfig } from '../../schemas/topics.ts'
import { DeliveryQueue } from './delivery-queue.ts'
import { SnapshotStore } from './snapshot.ts'
import { SinkStore } from './store.ts'
import { CatchUpReaders } from './worker/catch-up.ts'
import { workerSettings, type SinkWorkerDeps, type SinkWorkerSettings } from './worker/config.ts'
import { ControlLoop } from './worker/control-loop.ts'
import { Delivery } from './worker/delivery.ts'
import { GrantsCache } from './worker/grants-cache.ts'
import { Outcomes } from './worker/outcomes.ts'
import { Ownership } from './worker/ownership.ts'
import { Positions } from './worker/positions.ts'
import { RetryRequests } from './worker/retry-requests.ts'
import { HeldRuns, ReaderSlots } from './worker/run.ts'
import { Runs } from './worker/runs.ts'
import { SharedReader } from './worker/shared-reader.ts'
import { SnapshotBootstrap } from './worker/snapshots.ts'
import { StatusReports } from './worker/status.ts'
import { HealthEvents } from './worker/health.ts'

export { defaultWorkerId, WORKER_DEFAULTS } from './worker/config.ts'
export type { SinkFactory, SinkWorkerDeps, SinkWorkerSettings } from './worker/config.ts'
export { READER_OPTIONS } from './worker/shared-reader.ts'
export { MAX_CURSOR_WRITES_PER_FLUSH } from './worker/positions.ts'
export { RETRY_SWEEP_MS } from './worker/retry-requests.ts'
export { deliveryPolicy } from './worker/runs.ts'

export class SinkWorker {
  readonly settings: SinkWorkerSettings
  readonly store: SinkStore
  readonly snapshots: SnapshotStore
  readonly queue: DeliveryQueue
  readonly #d: SinkWorkerDeps
  readonly #log: Logger
  readonly #held = new HeldRuns()
  readonly #slots: ReaderSlots
  readonly #ownership: Ownership
  readonly #positions: Positions
  readonly #grants: GrantsCache
  readonly #outcomes: Outcomes
  readonly #delivery: Delivery
  readonly #shared: SharedReader
  readonly #catchUp: CatchUpReaders
  readonly #snapshots: SnapshotBootstrap
  readonly #runs: Runs
  readonly #retries: RetryRequests
  readonly #control: ControlLoop
  #producer: Producer | null = null
  #admin: Admin | null = null
  #timers: NodeJS.Timeout[] = []
  /** Periodic passes under way: stop() waits for them, so none writes after the worker stopped. */
  #passes = new Set<Promise<void>>()
  #busy = new Set<string>()
  #stopping = false

  constructor(deps: SinkWorkerDeps) {
    this.#d = deps
    const settings = (this.settings = workerSettings(deps.settings))
    const log = (this.#log = deps.logger.child({ component: 'sink-worker', workerId: settings.workerId }))
    const incarnation = randomUUID()
    const held = this.#held
    this.store = new SinkStore(deps.db, incarnation)
    this.snapshots = new SnapshotStore(deps.db)
    this.queue = new DeliveryQueue(
      {
        onDeadLetter: (id, record, info) => this.#outcomes.deadLetter(id, record, info),
        onAttemptFailed: (id, _record, info) => this.#outcomes.noteError(id, info.error),
        onUnparked: (id) => this.#control.unparked(id),
        onDelivered: (id) => {
          const run = this.#held.runs.get(id)
          if (run) this.#catchUp.delivered(run)
        },
        onDisabled: (id, info) => {
          this.#outcomes.noteError(id, info.error)
          log.warn(
            'subscription endpoint disabled: its records are held until it is re-enabled (restart the connector)',
            { subscriptionId: id, reason: info.reason },
          )
        },
      },
      { logger: log },
    )
    const queue = this.queue
    const leaseValid = () => this.#ownership.leaseValid()
    const admin = () => this.#admin!
    const unknownSchemas = new Set<number>()
    this.#slots = new ReaderSlots(settings.maxCatchUpReaders)
    this.#ownership = new Ownership({
      incarnation,
      store: this.store,
      controlPlane: deps.controlPlane,
      settings,
      log,
      held,
      leave: (run, opts) => this.#control.leave(run, opts),
      leaveMany: (runs, opts) => this.#control.leaveMany(runs, opts),
      stopAll: () => this.#control.stopAll(),
    })
    const positions = (this.#positions = new Positions({
      queue,
      store: this.store,
      held,
      workerId: settings.workerId,
      log,
      admin,
      leaseValid,
      collapseIndexMaxKeys: settings.collapseIndexMaxKeys,
    }))
    const grants = (this.#grants = new GrantsCache(deps.controlPlane, settings.pollMs, log, deps.metrics))
    const outcomes = (this.#outcomes = new Outcomes({
      controlPlane: deps.controlPlane,
      settings,
      held,
      log,
      metrics: deps.metrics,
      producer: () => this.#producer!,
      drained: () => this.#delivery.wake(),
    }))
    const delivery = (this.#delivery = new Delivery({ grants, outcomes, log, leaseValid }))
    const core = { deps, settings, queue, held, positions, log }
    const readers = { ...core, unknownSchemas }
    const stores = { store: this.store, snapshotStore: this.snapshots }
    this.#shared = new SharedReader(readers)
    const status = new StatusReports({
      controlPlane: deps.controlPlane,
      settings,
      queue,
      positions,
      metrics: deps.metrics,
      log,
      health: new HealthEvents({
        topic: deps.topics.find((t) => t.valueSchema === 'subscription-health'),
        serde: deps.serde,
        grants,
        producer: () => this.#producer!,
      }),
      leaseValid,
    })
    const snapshots = (this.#snapshots = new SnapshotBootstrap({
      deps,
      settings,
      store: this.snapshots,
      held,
      positions,
      slots: this.#slots,
      log,
      admin,
      leaseValid,
      report: (run) => status.reportRun(run, true),
    }))
    const catchUp = (this.#catchUp = new CatchUpReaders({ ...readers, slots: this.#slots, snapshots }))
    this.#runs = new Runs({ ...core, ...stores, grants, outcomes, delivery, catchUp, snapshots, status, leaseValid })
    this.#retries = new RetryRequests({ ...readers, delivery, grants, outcomes })
    this.#control = new ControlLoop({
      ...core,
      ...stores,
      ownership: this.#ownership,
      runs: this.#runs,
      catchUp,
      shared: this.#shared,
      retries: this.#retries,
      outcomes,
      status,
    })
  }

  get workerId(): string {
    return this.settings.workerId
  }

  /** Subscriptions this worker runs now. */
  held(): string[] {
    return [...this.#held.runs.keys()]
  }

  /** Subscriptions claimed and still starting here (their first cursor and status not written yet). */
  starting(): string[] {
    return [...this.#held.starting.keys()]
  }

  catchUpReaders(): number {
    return this.#slots.used
  }

  /** Catch-up readers that yielded their slot to a waiting subscription since the start. */
  get catchUpYields(): number {
    return this.#catchUp.yields
  }

  /** Backlog collapses that needed no scan (their winners from the shared reader's index), since the start. */
  get collapsesWithoutScan(): number {
    return this.#snapshots.collapsesWithoutScan
  }

  /** Catch-up readers started since the start. */
  get catchUpStarts(): number {
    return this.#catchUp.started
  }

  /** Where a held subscription is (for tests and status). */
  positions(id: string): Record<string, string> | undefined {
    const run = this.#held.runs.get(id)
    return run ? this.#positions.of(run) : undefined
  }

  /** Delivery-log writes not written yet. */
  logBacklog(): number {
    return this.#outcomes.backlog
  }

  async start(): Promise<void> {
    this.#ownership.startedAt = new Date()
    await this.store.init()
    // The worker id first (a predecessor under the same id: gone, or start fails before connecting anything).
    await this.#ownership.takeIdentity()
    try {
      await this.#startWithIdentity()
    } catch (err) {
      // a failed start gives the id and its connections up (the platform retries with a new worker)
      await this.#shared.disconnect()
      await this.#producer?.disconnect().catch(() => undefined)
      await this.#admin?.disconnect().catch(() => undefined)
      await this.#ownership.releaseIdentity()
      throw err
    }
  }

  async #startWithIdentity(): Promise<void> {
    const d = this.#d
    const s = this.settings
    this.#admin = createAdmin(d.kafka)
    await this.#admin.connect()
    await createTopicsReady(this.#admin, [deadLetterTopicConfig(s.deadLetterTopic)])
    this.#producer = createProducer(d.kafka)
    await this.#producer.connect()
    for (const t of d.topics) await this.#positions.refresh(t.name)

    // Claim a first share, then start the shared reader where the held subscriptions' cursors are,
    // so that after a restart they attach at once instead of each catching up on its own.
    await this.#ownership.firstHeartbeat()
    const claimed = await this.#control.firstClaim()
    const cursors = await this.store.getCursors(claimed)
    await this.#shared.start(cursors, this.#ownership.incarnation)
    this.#control.pollFromNow()
    await this.#runs.startTracked(claimed, cursors)

    const every = (ms: number, name: string, fn: () => Promise<void>) => {
      const t = setInterval(() => {
        if (this.#busy.has(name) || this.#stopping) return
        this.#busy.add(name)
        const pass = fn()
          .catch((err: unknown) => this.#log.warn(`${name} failed; retrying next tick`, { error: err }))
          .finally(() => {
            this.#busy.delete(name)
            this.#passes.delete(pass)
          })
        this.#passes.add(pass)
      }, ms)
      this.#timers.push(t)
    }
    const control = this.#control
    const wake = () => this.#delivery.wake()
    every(s.heartbeatMs, 'leases', () => this.#ownership.leasePass().finally(wake))
    every(s.heartbeatMs, 'claims', () => control.claimPass())
    every(s.pollMs, 'control', () => control.controlPass())
    every(s.cursorFlushMs, 'flush', () => control.flushPass())
    every(Math.min(250, s.cursorFlushMs), 'catch-up', async () => this.#catchUp.pass())
    every(Math.min(250, s.heartbeatMs), 'fence', async () => this.#ownership.fencePass())
    every(s.statusIntervalMs, 'status', () => control.statusPass())
    every(Math.max(s.pollMs, 1000), 'grants', () => this.#grants.pass(this.#held.runs.values()).finally(wake))
    this.#log.info('sink worker started', { held: claimed.length, topics: d.topics.map((t) => t.name) })
  }

  /** Hands every subscription over (cursors written, leases released) and disconnects. */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    await Promise.allSettled([...this.#passes])
    await Promise.allSettled([...this.#held.starting.values()])
    await this.#shared.disconnect()
    // every run's control operations settled first, then one batch (cursors, statuses, leases)
    const runs = [...this.#held.runs.values()]
    await Promise.allSettled(runs.map((run) => run.ops))
    await this.#runs.stopMany(runs, { flush: true, release: true, state: 'unassigned' })
    await this.#retries.settled()
    await this.#shared.commit().catch(() => undefined)
    await this.#outcomes.drain(15_000)
    this.queue.close()
    await this.#ownership.releaseIdentity()
    await this.#producer?.disconnect().catch(() => undefined)
    await this.#admin?.disconnect().catch(() => undefined)
    this.#log.info('sink worker stopped')
  }
}
