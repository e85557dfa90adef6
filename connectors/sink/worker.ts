/**
 * The sink worker: moves records from Kafka to the subscriptions' sinks (docs/architecture.md "Positions
 * at scale").
 *
 *  - Subscriptions are spread over the worker processes by leases in MongoDB (store.ts): each worker
 *    holds about its fair share, renews its leases every heartbeat, and takes over expired ones, so a
 *    killed worker's subscriptions resume elsewhere after about `leaseTtlMs`, from their cursors. A
 *    process restarted under the same worker id takes its previous incarnation's leases over at once
 *    (identity.ts: how it tells a gone predecessor from a live process misconfigured with its id).
 *  - The SHARED reader: one kafkajs consumer per worker process reads every partition once (group
 *    `<groupId>.<workerId>.<incarnation>`, one per process start (#startShared): a group shared by
 *    processes would spread the partitions over them, while a worker needs every partition of the
 *    subscriptions it holds). Each record is decoded once per reader schema and offered to every
 *    held subscription that is attached on that partition: enqueued into the DeliveryQueue when it
 *    wants the event type, skipped otherwise. The group commits, per
 *    partition, the minimum safe offset of the attached subscriptions (never past an undelivered record).
 *  - A CURSOR per subscription (one MongoDB document: its next offset per topic-partition), written by
 *    the lease holder every `cursorFlushMs` and on pause, stop and hand-over, is the durable truth.
 *  - A subscription that is paused, replaying (offset reset), new with startFrom earliest, taken over
 *    behind the shared stream, or slow (more than `maxBuffered` records held) is DETACHED: the shared
 *    reader ignores it, and a CATCH-UP reader of its own (a consumer in a unique group, no commits,
 *    seeking to its positions) feeds it until, per partition, it reaches the shared reader's position,
 *    where it re-attaches. The hand-over is exact because both readers run on one event loop: a
 *    partition attaches when the catch-up reader's next offset reaches the shared reader's next offset,
 *    and the queue ignores offsets below what it already holds. Catch-up readers are limited to
 *    `maxCatchUpReaders` at a time; one stops when its subscription holds `maxBuffered` records and
 *    starts again once half of them are delivered. The slots are shared in turns: subscriptions
 *    waiting for one get it in the order they started waiting, and while any waits, a reader that
 *    has run for `catchUpSliceMs` yields its slot (its position kept) and queues again.
 *  - Control: connector changes are polled (connectorsChangedSince, plus a full reconciliation with the
 *    lease pass); pause and resume apply in place, anything else (offset reset, restart, changed
 *    subscription) restarts the subscription's run from its cursor. Status goes back with
 *    reportConnectorStatus on change and every `statusIntervalMs`.
 *  - Entitlements (entitlement.ts) are applied at DELIVERY time, in `#entitled`, on every path to a
 *    sink (the queue's `#deliver`: live, catch-up, replay, snapshot, and dead-letter retries): a
 *    record no current grant covers is dropped (its position advances, nothing is logged
 *    as a delivery, deliveries{outcome="filtered"} counts it), the rest is projected. The grants of the
 *    partners this worker serves are held in memory and re-read in full every `pollMs` (at least 1 s; a deleted grant
 *    leaves no trace to poll for).
 *  - A CONTROL-PLANE OUTAGE holds delivery (#deliverable): while the leases are not surely this
 *    worker's (not renewed for 0.8 x leaseTtlMs: another worker may take them over soon) or a partner's
 *    grants are older than `#grantsMaxAgeMs` (a revoked grant must not be delivered under), every
 *    delivery waits before calling the partner. It is not an attempt: nothing is logged, no retry
 *    schedule advances, nothing parks, disables or dead-letters; records stay in their lanes (the
 *    readers stop at maxBuffered). Delivery resumes at the first lease renewal and grants read that
 *    succeed (within about a heartbeat of the store's return). So does a delivery log that is
 *    logBacklogMax writes behind (#logWrite).
 *  - HAND-OVER: a stopping run aborts its partner calls in flight first (#stopRuns), and the lease
 *    fence aborts them all when the leases are not renewed in time (#fencePass): two workers never call
 *    a partner for one subscription at once.
 *  - Dead letters go to the dead-letter topic and the delivery log (with the record's bytes, so a retry
 *    request re-delivers from there); every attempt goes to the delivery log. Retry requests are taken
 *    per held subscription (#retryPass); a dead letter goes again in its key's lane, unless a newer
 *    version of its key was read since (#redeliverInLanes).
 */
import { Limiter } from '../../common/limiter.ts'
import { randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import os from 'node:os'
import type avro from 'avsc'
import { Partitioners, type Admin, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs'
import { MongoError, MongoNetworkError, MongoServerSelectionError, type Db } from 'mongodb'
import { RetriableError, SyndicationError } from '../../common/errors.ts'
import type { Logger } from '../../common/logger.ts'
import { activeSpan } from '../../common/tracing.ts'
import { ownDeliveryPolicy, type ControlPlane } from '../../control-plane/service.ts'
import type { ConnectorDoc, ConnectorStatus, DeadLetterRecord, DeliveryDoc, GrantDoc, OffsetReset, RetryRequestDoc, SnapshotProgress, SubscriptionDoc } from '../../control-plane/types.ts'
import { DEAD_LETTER_HEADER, valueSubject, type TopicSpec } from '../../schemas/topics.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import { createTopicsReady } from '../../common/kafka-admin.ts'
import { deadLetterTopicConfig } from '../../schemas/topics.ts'
import { backoffDelay, DEFAULT_SHORT_POLICY, type SchedulePolicy } from '../retry.ts'
import { sleep } from '../../common/timers.ts'
import { DeliveryQueue, laneKey, type DeadLetterInfo } from './delivery-queue.ts'
import { DecodedMessage, deadLetterMessage, loadSchemas, projected, rawOf, undeliverable } from './records.ts'
import { decide, publisherOf } from './entitlement.ts'
import { DispatchIndex } from './dispatch.ts'
import { pinsOf } from '../../control-plane/schema-pins.ts'
import type { DeliveryDefaults } from './settings.ts'
import { SinkStore, tpKey, type CursorDoc, type LeaseDoc } from './store.ts'
import { identityLost, releaseIdentity, takeIdentity, tryTakeIdentity } from './identity.ts'
import { countBelow, finishedProgress, scanLatest, snapshotDecision, SnapshotRun, SnapshotStore, type ScanRange, type SnapshotDoc } from './snapshot.ts'
import type { AttemptReport, SinkConnector, SinkContext, SinkRecord } from './types.ts'
import type { AppConfig } from '../../config/index.ts'
import type { Metrics } from '../../common/metrics.ts'

/** The `worker.*` settings (config/schema.ts), with the worker's id resolved. */
export type SinkWorkerSettings = Omit<AppConfig['worker'], 'id'> & { workerId: string }

/** Builds and starts the sink of a subscription (the runtime owns positions, retries and dead letters). */
export type SinkFactory = (sub: SubscriptionDoc, ctx: SinkContext) => Promise<SinkConnector<unknown>>

export interface SinkWorkerDeps {
  kafka: Kafka
  controlPlane: ControlPlane
  db: Db
  serde: AvroSerde
  /** The topics this worker serves (the platform's TopicSpecs). */
  topics: readonly TopicSpec[]
  createSink: SinkFactory
  defaults: DeliveryDefaults
  logger: Logger
  settings: Partial<SinkWorkerSettings>
  /** Delivery counters, latency and lag per subscription (GET /metrics). */
  metrics?: Metrics
}

export const WORKER_DEFAULTS: Omit<SinkWorkerSettings, 'workerId'> = {
  groupId: 'distributary-sinks',
  deadLetterTopic: 'distributary.dead-letters',
  leaseTtlMs: 6000,
  heartbeatMs: 1000,
  pollMs: 1000,
  cursorFlushMs: 1000,
  statusIntervalMs: 5000,
  maxBuffered: 2000,
  maxCatchUpReaders: 8,
  catchUpSliceMs: 30_000,
  logDelivered: true,
  logBacklogMax: 10_000,
}

/**
 * The kafkajs options of the shared and catch-up readers, for quick recovery after a broker restart.
 * Each reader is the only member of its group. kafkajs retries a failed fetch or join 5 times by
 * default (300 ms doubling) and then crashes and restarts the consumer as a NEW member, and the
 * coordinator, which reloaded the group with the old member after the restart, waits for that
 * member's session to expire (it was 30 s) before the new one gets partitions: recoveries of 6 to
 * 57 s. Here the reader retries every 2 s at most for about a minute, keeping its member id (it
 * rejoins at once when the broker is back), and a session of 10 s bounds the wait when it does
 * crash. maxWaitTimeInMs only bounds an idle fetch: the broker answers as soon as a record arrives.
 */
export const READER_OPTIONS = {
  maxWaitTimeInMs: 100,
  allowAutoTopicCreation: false,
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 1000,
  retry: { initialRetryTime: 200, maxRetryTime: 2000, retries: 30 },
} as const

/**
 * Cursor writes per flush pass at most. On FerretDB (SQLite) a cursor upsert costs the server about
 * 1.2 ms of CPU (it was 2 to 40 ms before the _id index fix, stack/ferretdb.ts), so a worker holding
 * 1,000 busy subscriptions that wrote every cursor every second kept the store, which leases and
 * statuses also need, and the machine busy: at 250 a flush the partners benchmark's p99 was 244 ms, at
 * 100 it is 47 ms. Beyond this many, the flush writes the cursors written longest ago first: a cursor
 * then lags by a few intervals (1,000 busy subscriptions: 10 s; more re-deliveries, with the same
 * webhook-id, after a crash; Kafka Connect commits every 60 s), never runs ahead.
 */
export const MAX_CURSOR_WRITES_PER_FLUSH = 100

/** How often a worker completes the retry requests of deleted subscriptions. */
export const RETRY_SWEEP_MS = 30_000

/** A dead letter delivered again on request: a few quick attempts, then it stays dead (with the reason). */
const REDELIVERY_POLICY = { ...DEFAULT_SHORT_POLICY, maxAttempts: 3 }
const NOT_ENTITLED = 'not entitled: no current grant covers this record, so it is not re-delivered'
const SUPERSEDED = 'not re-delivered: a newer record of its key was read since (delivering it now would put an older version after a newer one)'

export function defaultWorkerId(): string {
  return `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`
}

interface Part {
  topic: string
  partition: number
  key: string
  /** Fed by the shared reader (true) or by the subscription's catch-up reader (false). */
  attached: boolean
  /** Detached: the next offset the catch-up reader hands over. */
  next: number
}

interface Run {
  id: string
  sub: SubscriptionDoc
  generation: number
  resetId: string | null
  restartAt: number | null
  appliedResetId: string | null
  desiredState: ConnectorDoc['desiredState']
  topics: string[]
  /** Event types and topic names the subscription wants. */
  wanted: Set<string>
  /** Pinned reader schema per topic (absent: the writer's schema). */
  readers: Map<string, avro.Type>
  sink: SinkConnector<unknown> | null
  /** Set when the run cannot deliver at all (unsupported sink, bad config): it holds no queue. */
  failure: { code: string; message: string } | null
  parts: Map<string, Part>
  catchUp: CatchUp | null
  /** The catch-up reader stopped because the subscription held maxBuffered records. */
  throttled: boolean
  /** Since when the run waits for a catch-up reader slot (0: not waiting). */
  waitingForReader: number
  /** Its lease was taken over, or it is being handed over: no partner call starts; its stop is queued. */
  leaving: boolean
  inflight: Map<string, { record: SinkRecord; forceLog: boolean; signal: AbortSignal }>
  /** Events with a failed attempt in the delivery log: their success is logged even where successes are not (it closes the entry). */
  failedLogged: Set<string>
  /** Aborts this run's partner calls in flight (stop, hand-over; the lease fence, which replaces it). */
  calls: AbortController
  /** The positions when the run stopped (its queue is gone by then). */
  finalPositions: Record<string, string> | null
  lastError: { code: string; message: string; at: Date } | null
  lastReport: string
  lastReportAt: number
  lastCursor: string
  /** When the cursor was last written (the flush writes the oldest first when it cannot write all). */
  lastCursorAt: number
  /** Serialises control operations on this run. */
  ops: Promise<void>
  stopped: boolean
  /** An unfinished snapshot bootstrap (snapshot.ts); null otherwise. */
  snapshot: SnapshotRun | null
  /** The last finished snapshot, for the status. */
  lastSnapshot: SnapshotProgress | null
}

interface StopOptions {
  /** Write the cursor (when the lease is surely ours). */
  flush: boolean
  /** Release the lease. */
  release: boolean
  /** Report this state. */
  state?: ConnectorStatus['state']
}

/** A subscription's documents, read in a batch before its run starts. */
interface Preloaded {
  sub: SubscriptionDoc | null
  conn: ConnectorDoc | null
  cursor: CursorDoc | null
}

interface CatchUp {
  consumer: Consumer
  stopping: Promise<void> | null
  startedAt: number
}


export class SinkWorker {
  readonly settings: SinkWorkerSettings
  readonly store: SinkStore
  readonly snapshots: SnapshotStore
  readonly queue: DeliveryQueue
  readonly #d: SinkWorkerDeps
  readonly #log: Logger
  readonly #runs = new Map<string, Run>()
  readonly #starting = new Map<string, Promise<void>>()
  readonly #byTopic = new Map<string, Set<Run>>()
  /** Per topic-partition: the attached subscriptions by row filter (dispatch.ts), rebuilt when `#dispatchVersion` moved. */
  readonly #dispatch = new Map<string, { version: number; index: DispatchIndex<Run> }>()
  #dispatchVersion = 0
  /** The shared reader's next offset per topic-partition. */
  readonly #sharedNext = new Map<string, number>()
  readonly #committed = new Map<string, number>()
  /** High watermarks (for lag) and low watermarks (for resets), per topic-partition. */
  readonly #high = new Map<string, number>()
  readonly #low = new Map<string, number>()
  readonly #partitions = new Map<string, number[]>()
  readonly #unknownSchemas = new Set<number>()
  readonly #logChains = new Map<string, Promise<void>>()
  /** Delivery-log writes not written yet (the backlog: bounded by logBacklogMax with back-pressure). */
  #logPending = 0
  /** Deliveries wait for the delivery log's backlog to fall below half of logBacklogMax. */
  #logHeld = false
  /** Aborted when the worker gives up on the delivery log's backlog (stop). */
  readonly #logGiveUp = new AbortController()
  /** Delivery-log writes in flight at most: a burst must not starve lease and cursor writes of connections (or, on FerretDB, of SQLite's one writer). */
  readonly #logLimiter = new Limiter(4)
  #logDropped = 0
  #shared: Consumer | null = null
  #producer: Producer | null = null
  #admin: Admin | null = null
  #timers: NodeJS.Timeout[] = []
  /** Periodic passes under way: stop() waits for them, so none writes after the worker stopped. */
  #passes = new Set<Promise<void>>()
  #busy = new Set<string>()
  #renewedAt = 0
  #since = new Date(0)
  #stopping = false
  #startedAt = new Date()
  #catchUps = 0
  /** The current grants per partner of the held subscriptions, and when they were read. */
  readonly #grants = new Map<string, { grants: GrantDoc[]; at: number }>()
  /** Resolved, and replaced, after every lease and grants pass: deliveries held by #deliverable look again. */
  #passed = signalled()
  /** Since when deliveries are held (#deliverable), 0 while they are not. */
  #heldSince = 0
  /** The lease fence aborted the calls in flight and the leases were not renewed since (#fencePass). */
  #fenced = false
  /** Kafka scans of retry requests (#redeliverInLanes) at a time. */
  readonly #retryScans = new Limiter(2)
  /** Retry requests being performed, per subscription (one at a time each). */
  readonly #retrying = new Map<string, Promise<void>>()
  #nextRetrySweep = 0
  /** This process start (identity.ts): held in the heartbeat and in every lease. */
  readonly #incarnation = randomUUID()
  /** Whether this incarnation holds its worker id (false after another process took it over). */
  #identity = false

  constructor(deps: SinkWorkerDeps) {
    this.#d = deps
    this.settings = { workerId: deps.settings.workerId || defaultWorkerId(), ...WORKER_DEFAULTS, ...stripUndefined(deps.settings) } as SinkWorkerSettings
    if (!this.settings.workerId) this.settings.workerId = defaultWorkerId()
    this.#log = deps.logger.child({ component: 'sink-worker', workerId: this.settings.workerId })
    this.store = new SinkStore(deps.db, this.#incarnation)
    this.snapshots = new SnapshotStore(deps.db)
    this.queue = new DeliveryQueue(
      {
        onDeadLetter: (id, record, info) => this.#deadLetter(id, record, info),
        onAttemptFailed: (id, _record, info) => this.#noteError(id, info.error),
        onDisabled: (id, info) => {
          this.#noteError(id, info.error)
          this.#log.warn('subscription endpoint disabled: its records are held until it is re-enabled (restart the connector)', { subscriptionId: id, reason: info.reason })
        },
      },
      { logger: this.#log },
    )
  }

  get workerId(): string {
    return this.settings.workerId
  }

  /** Subscriptions this worker runs now. */
  held(): string[] {
    return [...this.#runs.keys()]
  }

  catchUpReaders(): number {
    return this.#catchUps
  }

  /** Catch-up readers that yielded their slot to a waiting subscription since the start. */
  get catchUpYields(): number {
    return this.#catchUpYields
  }
  #catchUpYields = 0

  /** Where a held subscription is (for tests and status). */
  positions(id: string): Record<string, string> | undefined {
    const run = this.#runs.get(id)
    return run ? this.#positionsOf(run) : undefined
  }

  async start(): Promise<void> {
    const d = this.#d
    const s = this.settings
    this.#startedAt = new Date()
    await this.store.init()
    // The worker id first (a predecessor under the same id: gone, or start fails before connecting anything).
    const { previous, reason } = await takeIdentity(this.store, { ...this.#identityOptions(), pollMs: s.heartbeatMs })
    this.#identity = true
    if (previous) this.#log.info('worker id taken over from a previous process', { previousIncarnation: previous.incarnation ?? null, previousHost: previous.host ?? null, reason })
    try {
      await this.#startWithIdentity()
    } catch (err) {
      // a failed start gives the id and its connections up (the platform retries with a new worker)
      await this.#shared?.disconnect().catch(() => undefined)
      await this.#producer?.disconnect().catch(() => undefined)
      await this.#admin?.disconnect().catch(() => undefined)
      await releaseIdentity(this.store, s.workerId, this.#incarnation).catch(() => undefined)
      this.#identity = false
      throw err
    }
  }

  async #startWithIdentity(): Promise<void> {
    const d = this.#d
    const s = this.settings
    this.#admin = d.kafka.admin()
    await this.#admin.connect()
    await createTopicsReady(this.#admin, [deadLetterTopicConfig(s.deadLetterTopic)])
    // the partitioner named: kafkajs otherwise warns at every start that its default changed in v2
    this.#producer = d.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
    await this.#producer.connect()
    for (const t of d.topics) await this.#refreshOffsets(t.name)

    // Claim a first share, then start the shared reader where the held subscriptions' cursors are,
    // so that after a restart they attach at once instead of each catching up on its own.
    if (!(await this.store.heartbeat(s.workerId, this.#incarnation, s.leaseTtlMs))) throw new RetriableError('this worker id was taken over by another process while this one started', 1000, { workerId: s.workerId })
    this.#renewedAt = Date.now()
    const claimed = await this.#claimShare()
    const cursors = await this.store.getCursors(claimed)
    await this.#startShared(cursors)
    this.#since = new Date(Date.now() - 5000)
    await this.#startRunsTracked(claimed, cursors)

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
    every(s.heartbeatMs, 'leases', () => this.#leasePass().finally(() => this.#wake()))
    every(s.heartbeatMs, 'claims', () => this.#claimPass())
    every(s.pollMs, 'control', () => this.#controlPass())
    every(s.cursorFlushMs, 'flush', () => this.#flushPass())
    every(Math.min(250, s.cursorFlushMs), 'catch-up', async () => this.#catchUpPass())
    every(Math.min(250, s.heartbeatMs), 'fence', async () => this.#fencePass())
    every(s.statusIntervalMs, 'status', () => this.#statusPass())
    every(Math.max(s.pollMs, 1000), 'grants', () => this.#grantsPass().finally(() => this.#wake()))
    this.#log.info('sink worker started', { held: claimed.length, topics: d.topics.map((t) => t.name) })
  }

  /** Hands every subscription over (cursors written, leases released) and disconnects. */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    await Promise.allSettled([...this.#passes])
    await Promise.allSettled([...this.#starting.values()])
    await this.#shared?.disconnect().catch(() => undefined)
    // every run's control operations settled first, then one batch (cursors, statuses, leases)
    const runs = [...this.#runs.values()]
    await Promise.allSettled(runs.map((run) => run.ops))
    await this.#stopRuns(runs, { flush: true, release: true, state: 'unassigned' })
    await Promise.allSettled([...this.#retrying.values()])
    await this.#commitShared().catch(() => undefined)
    // The delivery log's backlog (a slow store after a burst) is waited for, but not for ever: the
    // deliveries themselves are confirmed and their positions written; a record left unwritten here is
    // a log line, not an event, and failures also live in the dead-letter topic.
    const logged = Promise.allSettled([...this.#logChains.values()])
    let timer: NodeJS.Timeout | undefined
    const late = await Promise.race([logged.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 15_000)))])
    clearTimeout(timer)
    if (late) this.#log.warn('stopped before the delivery log caught up: some attempts are not in the log', { pending: this.#logPending })
    this.#logGiveUp.abort()
    this.queue.close()
    if (this.#identity) await releaseIdentity(this.store, this.settings.workerId, this.#incarnation).catch(() => undefined)
    await this.#producer?.disconnect().catch(() => undefined)
    await this.#admin?.disconnect().catch(() => undefined)
    this.#log.info('sink worker stopped')
  }

  // ------------------------------------------------------------------ leases

  #identityOptions() {
    return { workerId: this.settings.workerId, incarnation: this.#incarnation, startedAt: this.#startedAt, ttlMs: this.settings.leaseTtlMs }
  }

  /**
   * Claims free or expired leases up to this worker's fair share, and every lease a previous
   * incarnation of this worker id left (it is gone: identity.ts), first; returns the ids it claimed.
   */
  async #claimShare(): Promise<string[]> {
    const s = this.settings
    if (!this.#identity) return []
    const now = new Date()
    const workers = Math.max(1, (await this.store.liveWorkers(now)).length)
    const connectors = await this.#d.controlPlane.cols.connectors.find({ desiredState: { $ne: 'stopped' } }, { projection: { _id: 1 } }).toArray()
    const leases = new Map((await this.store.all()).map((l) => [l._id, l] as [string, LeaseDoc]))
    const ours = (l: LeaseDoc) => l.workerId === s.workerId && l.incarnation === this.#incarnation
    const predecessor = (l: LeaseDoc | undefined) => l !== undefined && l.workerId === s.workerId && l.incarnation !== this.#incarnation
    const mine = [...leases.values()].filter(ours).length
    const target = Math.ceil(connectors.length / workers)
    const free = connectors.filter((c) => {
      const l = leases.get(c._id)
      // an expired lease of this incarnation is one of its runs restarting (#apply), not free
      return !l || (l.expiresAt <= now && !ours(l)) || predecessor(l)
    })
    shuffle(free)
    free.sort((a, b) => Number(predecessor(leases.get(b._id))) - Number(predecessor(leases.get(a._id))))
    // One batch (two commands), not a round trip per subscription: 1,000 are claimed in seconds.
    const wanted = free
      .filter((c) => !this.#runs.has(c._id) && !this.#starting.has(c._id))
      .slice(0, Math.max(0, target - mine))
      .map((c) => c._id)
    const claimed = [...(await this.store.claimMany(wanted, s.workerId, s.leaseTtlMs, leases, now))]
    // More than the fair share (another worker joined): hand the surplus over.
    const held = [...this.#runs.values()].filter((r) => !r.leaving && !r.stopped)
    if (workers > 1 && held.length > target) {
      for (const run of held.slice(0, held.length - target)) {
        this.#log.info('handing a subscription over to balance the workers', { subscriptionId: run.id })
        this.#leave(run, { flush: true, release: true, state: 'unassigned' })
      }
    }
    return claimed
  }

  /**
   * Renews the heartbeat and the leases, and nothing else that could wait: a lease pass that waited
   * for slow stops (a catch-up reader's disconnect, a cursor flush, a run's queued operations) renewed
   * late, the other leases expired too and moved between the workers, and the fence fired again and
   * again (the first full chaos run: delivery never caught up after a store outage). A lost lease
   * stops its run's partner calls at once (#leave); the stop itself runs in the run's own turn, and
   * reconciliation and claiming run in a pass of their own (#claimPass).
   */
  async #leasePass(): Promise<void> {
    const s = this.settings
    if (!(await this.store.heartbeat(s.workerId, this.#incarnation, s.leaseTtlMs)) && !(await this.#retakeIdentity())) return
    const ids = [...this.#runs.keys(), ...this.#starting.keys()]
    const t0 = Date.now()
    const held = await this.store.renew(s.workerId, ids, s.leaseTtlMs)
    this.#renewedAt = t0
    for (const run of [...this.#runs.values()]) {
      if (!held.has(run.id) && !run.leaving && !run.stopped) {
        this.#log.warn('lease lost (taken over after expiry): stopping the subscription here', { subscriptionId: run.id })
        this.#leave(run, { flush: false, release: false })
      }
    }
  }

  /** Reconciles held runs with the control plane (deleted, stopped or changed connectors) and claims this worker's share. */
  async #claimPass(): Promise<void> {
    const s = this.settings
    if (!this.#leaseValid()) return
    const connectors = await this.#d.controlPlane.cols.connectors.find({ _id: { $in: [...this.#runs.keys()] } }).toArray()
    const byId = new Map(connectors.map((c) => [c._id, c]))
    for (const run of [...this.#runs.values()]) {
      if (run.leaving) continue
      const c = byId.get(run.id)
      if (!c) this.#serialBg(run, () => this.#removed(run))
      else if (c.generation !== run.generation) this.#serialBg(run, () => this.#apply(run, c))
    }
    const claimed = await this.#claimShare()
    void this.#startRunsTracked(claimed)
    if (Math.random() < 0.05) await this.store.sweepWorkers(new Date(Date.now() - 10 * s.leaseTtlMs))
  }

  /**
   * The run leaves this worker: no partner call starts from now on and those in flight are aborted
   * (sent again by whoever holds the lease), and its stop is queued in the run's turn, not awaited.
   */
  #leave(run: Run, opts: StopOptions): void {
    run.leaving = true
    const calls = run.calls
    run.calls = callsController()
    calls.abort(FENCED)
    this.#serialBg(run, () => this.#stopRun(run, opts))
  }

  /**
   * The heartbeat is no longer this incarnation's: another process took the worker id over (this one
   * could not renew it for a lease TTL), or it was swept. Takes it back when it is free again; else
   * stops every subscription here (their leases are the other process's now) and claims nothing.
   */
  async #retakeIdentity(): Promise<boolean> {
    const r = await tryTakeIdentity(this.store, this.#identityOptions())
    if (r.taken) {
      if (!this.#identity) this.#log.warn('worker id free again: this process holds it and claims subscriptions again')
      this.#identity = true
      return true
    }
    if (this.#identity) {
      this.#identity = false
      identityLost(this.#incarnation)
      this.#log.error('another process holds this worker id now: every subscription stops here, and none is claimed while it holds the id', { holderIncarnation: r.holder?.incarnation ?? null, holderHost: r.holder?.host ?? null })
    }
    const runs = [...this.#runs.values()]
    await Promise.all(runs.map((run) => this.#serial(run, () => this.#stopRun(run, { flush: false, release: false }))))
    return false
  }

  /** Cursor writes only while the leases are surely ours (renewed within the TTL, with a margin). */
  #leaseValid(): boolean {
    return Date.now() - this.#renewedAt < this.settings.leaseTtlMs * 0.8
  }

  // ------------------------------------------------------------------ runs

  /**
   * Starts claimed subscriptions together: their subscriptions, connectors and cursors are read in
   * three queries, their first cursors and statuses written in one command each (a worker claiming
   * 1,000 subscriptions would otherwise spend minutes in round trips).
   */
  #startRunsTracked(ids: string[], cursors?: Map<string, CursorDoc>): Promise<void> {
    if (ids.length === 0) return Promise.resolve()
    const release = async (id: string, err: unknown) => {
      this.#log.error('subscription could not be started; releasing it', { subscriptionId: id, error: err })
      await this.store.release(id, this.settings.workerId).catch(() => undefined)
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
      await Promise.all(ids.map((id) => this.#startRun(id, pre.get(id), started).catch((err: unknown) => release(id, err))))
      const live = started.filter((r) => !r.stopped)
      await this.#writeCursors(live, true).catch((err: unknown) => this.#log.warn('first cursor write failed; the next flush writes them', { error: err }))
      await this.#reportRuns(live, true).catch((err: unknown) => this.#log.warn('status report failed; the next status pass reports', { error: err }))
    })()
    const p: Promise<void> = all.finally(() => {
      for (const id of ids) if (this.#starting.get(id) === p) this.#starting.delete(id)
    })
    for (const id of ids) this.#starting.set(id, p)
    return p
  }

  async #preload(ids: string[], cursors?: Map<string, CursorDoc>): Promise<Map<string, Preloaded>> {
    const cp = this.#d.controlPlane
    const [subs, conns, curs] = await Promise.all([
      cp.cols.subscriptions.find({ _id: { $in: ids } }).toArray(),
      cp.cols.connectors.find({ _id: { $in: ids } }).toArray(),
      cursors ?? this.store.getCursors(ids),
    ])
    const subById = new Map(subs.map((d) => [d._id, d]))
    const connById = new Map(conns.map((d) => [d._id, d]))
    return new Map(ids.map((id) => [id, { sub: subById.get(id) ?? null, conn: connById.get(id) ?? null, cursor: curs.get(id) ?? null }]))
  }

  /**
   * Starts one subscription. With `pre` (#startRunsTracked), its documents were read in a batch and
   * the run is pushed to `started` for batched first writes; without, it reads and writes alone.
   */
  async #startRun(id: string, pre?: Preloaded, started?: Run[]): Promise<void> {
    const cp = this.#d.controlPlane
    const [stored, conn] = pre ? [pre.sub, pre.conn] : await Promise.all([cp.cols.subscriptions.findOne({ _id: id }), cp.cols.connectors.findOne({ _id: id })])
    // what the subscription set itself (a frozen copy of old defaults, not migrated yet, counts as inherited)
    const sub = stored && { ...stored, deliveryPolicy: ownDeliveryPolicy(stored) }
    if (!sub || !conn) {
      await this.store.release(id, this.settings.workerId)
      return
    }
    if (conn.desiredState === 'stopped') {
      await this.#report(id, this.#status('stopped', conn.generation, conn.offsetReset?.id ?? null, {}, null, null))
      await this.store.release(id, this.settings.workerId)
      return
    }
    const topics = this.#d.topics.filter((t) => sub.eventTypes.includes(t.name) || t.eventTypes.some((e) => sub.eventTypes.includes(e))).map((t) => t.name)
    const run: Run = {
      id,
      sub,
      generation: conn.generation,
      resetId: conn.offsetReset?.id ?? null,
      restartAt: conn.restartRequestedAt?.getTime() ?? null,
      appliedResetId: null,
      desiredState: conn.desiredState,
      topics,
      wanted: new Set(sub.eventTypes),
      readers: new Map(),
      sink: null,
      failure: null,
      parts: new Map(),
      catchUp: null,
      throttled: false,
      waitingForReader: 0,
      leaving: false,
      inflight: new Map(),
      failedLogged: new Set(),
      calls: callsController(),
      finalPositions: null,
      lastError: null,
      lastReport: '',
      lastReportAt: 0,
      lastCursor: '',
      lastCursorAt: 0,
      ops: Promise.resolve(),
      stopped: false,
      snapshot: null,
      lastSnapshot: null,
    }
    try {
      for (const [eventType, version] of Object.entries(pinsOf(sub))) {
        const spec = this.#d.topics.find((t) => t.name === eventType || t.eventTypes.includes(eventType))
        if (spec) run.readers.set(spec.name, await this.#d.serde.readerFor(valueSubject(spec.name), version))
      }
      run.sink = await this.#d.createSink(sub, {
        subscriptionId: id,
        partnerId: sub.partnerId,
        logger: this.#log.child({ subscriptionId: id }),
        onAttempt: (report) => this.#onAttempt(run, report),
      })
    } catch (err) {
      if (err instanceof SyndicationError && err.retriable) throw err
      run.failure = { code: err instanceof SyndicationError ? err.code : 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
      run.lastError = { ...run.failure, at: new Date() }
      this.#runs.set(id, run)
      this.#log.error('subscription cannot run: its sink does not start', { subscriptionId: id, error: err })
      await this.#reportRun(run, true)
      return
    }

    // Positions: an offset reset not applied yet, else the cursor, else where the subscription starts.
    const cursor = pre ? pre.cursor : await this.store.getCursor(id)
    const reset = conn.offsetReset
    let positions: Map<string, number>
    const applyingReset = reset && cursor?.appliedResetId !== reset.id ? reset : null
    if (reset && cursor?.appliedResetId !== reset.id) {
      positions = await this.#resetPositions(topics, reset)
      run.appliedResetId = reset.id
      this.#log.info('offset reset applied', { subscriptionId: id, to: reset.to, timestamp: reset.timestamp })
    } else {
      run.appliedResetId = cursor?.appliedResetId ?? null
      positions = new Map()
      for (const t of topics) {
        for (const p of this.#partitions.get(t) ?? []) {
          const k = tpKey(t, p)
          const stored = cursor?.positions[k]
          let pos: number
          if (stored !== undefined) pos = Number(stored)
          else if (cursor || sub.startFrom !== 'latest') pos = this.#low.get(k) ?? 0 // a partition added later, or earliest/snapshot
          else pos = this.#sharedNext.get(k) ?? this.#high.get(k) ?? 0
          const low = this.#low.get(k) ?? 0
          if (pos < low) {
            this.#log.warn('cursor is below the earliest retained offset: records in between were deleted by retention', { subscriptionId: id, topic: t, partition: p, cursor: pos, earliest: low })
            pos = low
          }
          positions.set(k, pos)
        }
      }
    }

    await this.#prepareSnapshot(run, { hasCursor: cursor !== null, cursorResetId: cursor?.appliedResetId ?? null, applyingReset, positions })
    await this.#loadGrants([sub.partnerId])

    const policy = deliveryPolicy(sub, this.#d.defaults)
    const concurrency = sub.deliveryPolicy?.concurrency ?? this.#d.defaults.concurrency
    this.queue.addSubscription({
      id,
      policy,
      // a batching sink (REST) gathers concurrent keys into one request: let batchSize keys be in flight
      concurrency: sub.sink.type === 'rest' ? Math.max(concurrency, sub.deliveryPolicy?.batchSize ?? 1) : concurrency,
      parkAfterFailures: this.#d.defaults.parkAfterFailures,
      disableAfterMs: Math.min(this.#d.defaults.disableAfterMs, (sub.deliveryPolicy?.disableAfterFailingSeconds ?? Infinity) * 1000),
      rateLimitPerSecond: sub.deliveryPolicy?.rateLimitPerSecond ?? 0,
      deliver: (record, { signal }) => this.#deliver(run, record, signal),
    })
    const paused = conn.desiredState === 'paused'
    if (paused) this.queue.pause(id)
    for (const t of topics) {
      for (const p of this.#partitions.get(t) ?? []) {
        const k = tpKey(t, p)
        const pos = positions.get(k) ?? 0
        this.queue.skip(id, t, p, pos - 1) // the queue's floor: nothing below the cursor is offered again
        const shared = this.#sharedNext.get(k)
        run.parts.set(k, { topic: t, partition: p, key: k, next: pos, attached: !paused && !run.snapshot && shared !== undefined && pos >= shared })
      }
      let set = this.#byTopic.get(t)
      if (!set) this.#byTopic.set(t, (set = new Set()))
      set.add(run)
    }
    this.#dispatchVersion++
    this.#runs.set(id, run)
    if (started) started.push(run)
    else {
      await this.#writeCursors([run], true)
      await this.#reportRun(run, true)
    }
    this.#log.info('subscription running', { subscriptionId: id, state: conn.desiredState, detached: [...run.parts.values()].filter((p) => !p.attached).length })
  }

  /**
   * Stops a run: its catch-up reader, its queue (in-flight calls are aborted: they count as not
   * delivered), and writes its cursor (unless the lease is gone).
   */
  #stopRun(run: Run, opts: StopOptions): Promise<void> {
    return this.#stopRuns([run], opts)
  }

  /**
   * Stops runs together: one cursor write, one status report and one lease release for all of them.
   * First of all, in one tick, the partner calls in flight are aborted (a subscription handed over
   * must not be called by two workers at once; those calls count as not delivered: the positions are
   * taken before) and the readers offer the runs nothing more.
   */
  async #stopRuns(runs: Run[], opts: StopOptions): Promise<void> {
    const stopping = runs.filter((r) => !r.stopped)
    if (stopping.length === 0) return
    for (const run of stopping) {
      run.stopped = true
      if (this.queue.has(run.id)) {
        run.finalPositions = this.#positionsOf(run)
        this.queue.removeSubscription(run.id)
      }
      run.calls.abort(STOPPED)
      for (const t of run.topics) this.#byTopic.get(t)?.delete(run)
    }
    this.#dispatchVersion++
    this.#wake() // held deliveries of these runs see their abort
    await Promise.all(stopping.map(async (run) => {
      await run.snapshot?.scan?.abort()
      await this.#stopCatchUp(run)
    }))
    const flushable = stopping.filter((r) => !r.failure)
    if (opts.flush && this.#leaseValid() && flushable.length > 0) await this.#writeCursors(flushable, true).catch((err: unknown) => this.#log.warn('cursor write failed on stop', { subscriptions: flushable.length, error: err }))
    if (opts.state && this.#leaseValid()) {
      const state = opts.state
      const reports = stopping.map((run) => [run.id, this.#status(state, run.generation, run.appliedResetId, run.failure ? {} : this.#positionsOf(run), null, run.lastError)] as const)
      await this.#d.controlPlane.reportConnectorStatuses(reports).catch(() => undefined)
    }
    await Promise.all(stopping.map((run) => run.sink?.stop().catch(() => undefined)))
    for (const run of stopping) this.#runs.delete(run.id)
    if (opts.release) await this.store.releaseMany(stopping.map((r) => r.id), this.settings.workerId).catch(() => undefined)
  }

  /** The connector or subscription is gone. */
  async #removed(run: Run): Promise<void> {
    this.#log.info('subscription deleted: stopping it', { subscriptionId: run.id })
    await this.#stopRun(run, { flush: false, release: true })
    await this.store.deleteCursor(run.id).catch(() => undefined)
    await this.snapshots.delete(run.id).catch(() => undefined)
  }

  /** Applies a connector change: pause/resume in place; reset, restart or a changed subscription restart the run. */
  async #apply(run: Run, c: ConnectorDoc): Promise<void> {
    if (run.stopped || c.generation === run.generation) return
    const sub = await this.#d.controlPlane.cols.subscriptions.findOne({ _id: run.id })
    if (!sub) return this.#removed(run)
    if (c.desiredState === 'stopped') {
      this.#log.info('connector stopped', { subscriptionId: run.id })
      await this.#stopRun(run, { flush: true, release: true, state: 'stopped' })
      return
    }
    const resetId = c.offsetReset?.id ?? null
    const restartAt = c.restartRequestedAt?.getTime() ?? null
    if (sub.version !== run.sub.version || (resetId !== run.resetId && resetId !== run.appliedResetId) || restartAt !== run.restartAt || run.failure) {
      this.#log.info('restarting subscription', { subscriptionId: run.id, reset: resetId !== run.resetId, restart: restartAt !== run.restartAt, changed: sub.version !== run.sub.version })
      await this.#stopRun(run, { flush: true, release: false })
      await this.#startRun(run.id)
      return
    }
    run.generation = c.generation
    if (c.desiredState !== run.desiredState) {
      run.desiredState = c.desiredState
      if (c.desiredState === 'paused') this.#pause(run)
      else this.#resume(run)
      await this.#writeCursors([run], true)
    }
    await this.#reportRun(run, true)
  }

  #pause(run: Run): void {
    if (run.failure) return
    this.queue.pause(run.id)
    this.#detachAll(run)
    void this.#stopCatchUp(run)
    this.#log.info('subscription paused', { subscriptionId: run.id })
  }

  #resume(run: Run): void {
    if (run.failure) return
    this.queue.resume(run.id)
    this.queue.enable(run.id)
    this.#log.info('subscription resumed', { subscriptionId: run.id })
  }

  /** Leaves the shared stream: from here on the catch-up reader feeds every partition. */
  #detachAll(run: Run): void {
    for (const part of run.parts.values()) {
      if (!part.attached) continue
      part.attached = false
      part.next = this.#sharedNext.get(part.key) ?? part.next
    }
    this.#dispatchVersion++
  }

  #serial(run: Run, fn: () => Promise<void>): Promise<void> {
    const next = run.ops.then(fn, fn)
    run.ops = next.catch((err: unknown) => this.#log.error('subscription control operation failed', { subscriptionId: run.id, error: err }))
    return next
  }

  #serialBg(run: Run, fn: () => Promise<void>): void {
    this.#serial(run, fn).catch(() => undefined)
  }

  // ------------------------------------------------------------------ delivery

  /**
   * One record to the run's sink; `redelivery`: a dead letter delivered again on request (refused when
   * not entitled, always logged). Held while the control plane does not answer (#deliverable); a call
   * the lease fence aborted is no attempt: it waits for the leases and goes again.
   */
  async #deliver(run: Run, original: SinkRecord, signal: AbortSignal, redelivery = false): Promise<void> {
    // Entitlement first: a record no accepted grant covers (a tombstone or an undecodable record of
    // another publisher included) is none of this partner's business, not even as a dead letter
    // showing its key and publisher in the partner's delivery log.
    for (;;) {
      await this.#deliverable(run, signal)
      const record = this.#entitled(run, original)
      if (!record && redelivery) throw new SyndicationError('FORBIDDEN', NOT_ENTITLED, false, { subscriptionId: run.id, eventId: original.eventId })
      if (!record) return void activeSpan()?.setAttribute('distributary.delivery.filtered', true) // not entitled: done, nothing delivered
      const poison = undeliverable(original, run.sink)
      if (poison) throw poison
      const calls = run.calls
      const entry = { record, forceLog: redelivery, signal: calls.signal }
      run.inflight.set(record.eventId, entry)
      try {
        await run.sink!.put([record], { signal: calls.signal })
        return
      } catch (err) {
        if (calls.signal.reason !== FENCED || run.stopped || signal.aborted) throw err
      } finally {
        if (run.inflight.get(record.eventId) === entry) run.inflight.delete(record.eventId)
      }
    }
  }

  /**
   * The lease fence: leases not renewed for 0.8 x leaseTtlMs may soon be another worker's, so the
   * partner calls in flight are aborted (sent again once the leases are renewed, not counted as
   * attempts: #deliver, #onAttempt) while no new one starts (#deliverable). Two workers never call a
   * partner for one subscription at once, also when this one is cut off from the store.
   */
  #fencePass(): void {
    if (this.#leaseValid() || this.#runs.size === 0) {
      this.#fenced = false
      return
    }
    if (this.#fenced) return
    this.#fenced = true
    let aborted = 0
    for (const run of this.#runs.values()) {
      aborted += run.inflight.size
      const calls = run.calls
      run.calls = callsController()
      calls.abort(FENCED)
    }
    this.#log.warn('leases not renewed: no partner call starts, and those in flight were aborted (they are sent again once the leases are renewed)', { aborted })
  }

  /** Why deliveries of this run are held now (the control plane does not answer), or null. */
  #holdReason(run: Run): string | null {
    if (!this.#leaseValid()) return 'the leases could not be renewed'
    if (run.leaving) return 'the subscription is leaving this worker'
    if (this.#logHeld || this.#logPending >= this.settings.logBacklogMax) {
      this.#logHeld = this.#logPending >= this.settings.logBacklogMax / 2
      if (this.#logHeld) return 'the delivery log is behind'
    }
    const held = this.#grants.get(run.sub.partnerId)
    if (!held || Date.now() - held.at > this.#grantsMaxAgeMs()) return 'the partner grants could not be read'
    return null
  }

  /**
   * Waits while the control plane does not answer (#holdReason): a held delivery is no attempt, so no
   * retry schedule advances and nothing parks or dead-letters. Looked at again after every lease and
   * grants pass; rejects with the signal's reason once the run is stopped.
   */
  async #deliverable(run: Run, signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason
      const why = this.#holdReason(run)
      if (why === null) break
      if (this.#heldSince === 0) {
        this.#heldSince = Date.now()
        this.#log.warn('control-plane store not answering: delivery held (no attempts; retry schedules, parking and dead letters untouched) until it answers', { reason: why })
      }
      await this.#passed.promise
    }
    if (this.#heldSince !== 0) {
      this.#log.info('control-plane store answers again: delivery resumed', { heldMs: Date.now() - this.#heldSince })
      this.#heldSince = 0
    }
  }

  #wake(): void {
    const passed = this.#passed
    this.#passed = signalled()
    passed.resolve()
  }

  // ------------------------------------------------------------------ entitlements

  /** How old the held grants may be before delivery waits for fresh ones. */
  #grantsMaxAgeMs(): number {
    return Math.max(10_000, 5 * this.settings.pollMs)
  }

  /** The record as this subscription may receive it (projected), or null: no current grant covers it. */
  #entitled(run: Run, record: SinkRecord): SinkRecord | null {
    const held = this.#grants.get(run.sub.partnerId)
    if (!held || Date.now() - held.at > this.#grantsMaxAgeMs()) {
      throw new RetriableError('the partner grants could not be read recently: delivery waits for current ones', 1000, { subscriptionId: run.id, partnerId: run.sub.partnerId })
    }
    const d = decide(record, run.sub, held.grants)
    if (!d.deliver) {
      this.#d.metrics?.deliveries.inc({ sink: run.sub.sink.type, outcome: 'filtered' })
      this.#log.debug('record not entitled: dropped', { subscriptionId: run.id, eventId: record.eventId, topic: record.topic, partition: record.partition, offset: record.offset, reason: d.reason })
      return null
    }
    return d.projected ? projected(record, d.value, d.fields) : record
  }

  /** Reads the full grant set of these partners (a deleted grant is noticed by its absence). */
  async #loadGrants(partnerIds: string[]): Promise<void> {
    if (partnerIds.length === 0) return
    const at = Date.now()
    const grants = await this.#d.controlPlane.cols.grants.find({ partnerId: { $in: partnerIds } }).toArray()
    for (const id of partnerIds) this.#grants.set(id, { grants: grants.filter((g) => g.partnerId === id), at })
  }

  async #grantsPass(): Promise<void> {
    const partners = new Set([...this.#runs.values()].map((r) => r.sub.partnerId))
    for (const id of this.#grants.keys()) if (!partners.has(id)) this.#grants.delete(id)
    await this.#loadGrants([...partners])
  }

  #onAttempt(run: Run, report: AttemptReport): void {
    const entry = run.inflight.get(report.eventId)
    if (!entry) return
    const delivered = report.outcome === 'delivered'
    if (!delivered && entry.signal.aborted) return // aborted here (stop, hand-over, fence): not the partner's failure
    const m = this.#d.metrics
    if (m) {
      const sink = run.sub.sink.type
      m.deliveries.inc({ sink, outcome: report.outcome })
      if (delivered) {
        const ageSeconds = Math.max(0, Date.now() - entry.record.timestamp) / 1000
        m.deliveryLatency.observe({ sink }, ageSeconds)
        m.subscriptionFreshness.set({ subscription: run.id }, ageSeconds)
      }
    }
    if (!delivered) run.lastError = { code: report.code ?? 'FAILED', message: report.message ?? report.outcome, at: new Date(report.startedAt) }
    if (!delivered) run.failedLogged.add(report.eventId)
    else if (run.failedLogged.delete(report.eventId)) entry.forceLog = true
    if (delivered && (!this.settings.logDelivered || run.sink?.recordsDeliveries === true) && !entry.forceLog) return
    const r = entry.record
    this.#logWrite(
      run.id,
      r.eventId,
      () =>
        this.#d.controlPlane.deliveries.recordAttempt({
          subscriptionId: run.id,
          partnerId: run.sub.partnerId,
          publisherId: publisherOf(r),
          eventId: r.eventId,
          eventType: r.eventType,
          key: r.key ?? '',
          source: { topic: r.topic, partition: r.partition, offset: r.offset },
          status: delivered ? 'delivered' : 'retrying',
          attempt: {
            at: new Date(report.startedAt),
            durationMs: report.durationMs,
            statusCode: report.status ?? null,
            error: delivered ? null : `${report.code ?? 'FAILED'}: ${report.message ?? report.outcome}`,
            responseExcerpt: report.responseExcerpt ?? null,
          },
        }),
      delivered,
      true,
    )
  }

  /**
   * Delivery-log writes of one (subscription, event) in order (one document, one writer at a time).
   * An event's first attempt joins the delivery log's batch insert (not limited here: the batch is one
   * command); the others are upserts, a few at a time. A write the store did not take (unreachable,
   * a cleared pool) is tried again until it is written or the worker stops: the backlog of writes is
   * bounded by back-pressure instead (logBacklogMax: no partner call starts while it is full, until
   * half of it is written; #holdReason), and successes are not logged while it is more than half full.
   */
  #logWrite(subId: string, eventId: string, fn: () => Promise<void>, droppable: boolean, batchable = false): Promise<void> {
    if (droppable && this.#logPending > this.settings.logBacklogMax / 2) {
      if (this.#logDropped++ % 1000 === 0) this.#log.warn('delivery log behind: successful deliveries are not logged for now', { dropped: this.#logDropped })
      return Promise.resolve()
    }
    const key = `${subId}\u0000${eventId}`
    this.#logPending++
    const write = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await (batchable && this.#d.controlPlane.deliveries.isFirstWrite(subId, eventId) ? fn() : this.#logLimiter.run(fn))
        } catch (err) {
          if (!storeUnavailable(err) || this.#logGiveUp.signal.aborted) throw err
          if (attempt === 1) this.#log.warn('delivery log write failed: the store does not answer; trying again', { subscriptionId: subId, eventId, error: err })
          await sleep(backoffDelay({ initialDelayMs: 500, maxDelayMs: 10_000 }, attempt), this.#logGiveUp.signal)
        }
      }
    }
    const prev = this.#logChains.get(key) ?? Promise.resolve()
    const next: Promise<void> = prev
      .then(write)
      .catch((err: unknown) => this.#log.warn('delivery log write failed', { subscriptionId: subId, eventId, error: err }))
      .finally(() => {
        this.#logPending--
        if (this.#logChains.get(key) === next) this.#logChains.delete(key)
        if (this.#logHeld && this.#logPending < this.settings.logBacklogMax / 2) this.#wake()
      })
    this.#logChains.set(key, next)
    return next
  }

  /** Delivery-log writes not written yet. */
  logBacklog(): number {
    return this.#logPending
  }

  #noteError(id: string, error: unknown): void {
    const run = this.#runs.get(id)
    if (!run) return
    run.lastError = { code: error instanceof SyndicationError ? error.code : 'INTERNAL', message: error instanceof Error ? error.message : String(error), at: new Date() }
  }

  /** The dead-letter topic first, then the delivery log; a throw makes the queue try again (the offset waits). */
  async #deadLetter(id: string, record: SinkRecord, info: DeadLetterInfo): Promise<void> {
    const run = this.#runs.get(id)
    run?.failedLogged.delete(record.eventId) // its entry is closed as dead below
    const raw = rawOf(record)
    const err = info.error
    const poison = undeliverable(record, run?.sink)
    const code = err instanceof SyndicationError ? err.code : 'INTERNAL'
    const message = err instanceof Error ? err.message : String(err)
    const reason = poison ? `poison: ${message}` : info.reason === 'exhausted' ? `retries exhausted after ${info.attempts} attempts: ${message}` : `rejected: ${message}`
    const headers: Record<string, string> = {
      ...(raw?.headers ?? {}),
      [DEAD_LETTER_HEADER.reason]: reason,
      [DEAD_LETTER_HEADER.errorCode]: code,
      [DEAD_LETTER_HEADER.topic]: record.topic,
      [DEAD_LETTER_HEADER.partition]: String(record.partition),
      [DEAD_LETTER_HEADER.offset]: record.offset,
      [DEAD_LETTER_HEADER.attempts]: String(poison ? 0 : info.attempts),
      [DEAD_LETTER_HEADER.subscriptionId]: id,
      [DEAD_LETTER_HEADER.eventId]: record.eventId,
      [DEAD_LETTER_HEADER.at]: new Date().toISOString(),
    }
    const [meta] = await this.#producer!.send({ topic: this.settings.deadLetterTopic, messages: [{ key: id, value: raw?.value ?? null, headers }] })
    const deadLetter: DeadLetterRecord = {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key: raw?.key ? raw.key.toString('base64') : null,
      value: raw?.value ? raw.value.toString('base64') : null,
      headers: raw?.headers ?? {},
      deadLetterTopic: meta ? { topic: this.settings.deadLetterTopic, partition: meta.partition, offset: meta.baseOffset ?? meta.offset ?? '' } : null,
    }
    this.#log.warn('record dead-lettered', { subscriptionId: id, topic: record.topic, partition: record.partition, offset: record.offset, eventId: record.eventId, code, reason })
    await this.#logWrite(
      id,
      record.eventId,
      () =>
        this.#d.controlPlane.deliveries.markDead({
          subscriptionId: id,
          partnerId: run?.sub.partnerId ?? '',
          publisherId: publisherOf(record),
          eventId: record.eventId,
          eventType: record.eventType,
          key: record.key ?? '',
          reason,
          source: { topic: record.topic, partition: record.partition, offset: record.offset },
          deadLetter,
        }),
      false,
    )
  }

  // ------------------------------------------------------------------ snapshot bootstrap (snapshot.ts)

  /** Starts a new snapshot, resumes an unfinished one, or only loads the last one for the status. Before the cursor is written. */
  async #prepareSnapshot(run: Run, a: { hasCursor: boolean; cursorResetId: string | null; applyingReset: OffsetReset | null; positions: Map<string, number> }): Promise<void> {
    const existing = await this.snapshots.get(run.id)
    const decision = snapshotDecision({ startFrom: run.sub.startFrom, hasCursor: a.hasCursor, cursorResetId: a.cursorResetId, applyingReset: a.applyingReset, existing })
    let doc: SnapshotDoc
    if (decision === 'new') {
      const highs: Record<string, string> = {}
      for (const t of run.topics) for (const o of await this.#admin!.fetchTopicOffsets(t)) highs[tpKey(t, o.partition)] = o.high
      const now = new Date()
      doc = { _id: run.id, snapshotId: `snp_${randomUUID().replaceAll('-', '').slice(0, 20)}`, resetId: a.applyingReset?.id ?? null, highs, phase: 'scanning', total: null, done: 0, startedAt: now, completedAt: null, workerId: this.settings.workerId, updatedAt: now }
      await this.snapshots.put(doc) // before the cursor: a cursor of this start always has its snapshot document
      this.#log.info('snapshot started', { subscriptionId: run.id, snapshotId: doc.snapshotId, highs })
    } else if (decision === 'resume') {
      doc = { ...existing!, phase: 'scanning', workerId: this.settings.workerId }
      this.#log.info('snapshot resumed from the cursor', { subscriptionId: run.id, snapshotId: doc.snapshotId, done: doc.done, total: doc.total })
    } else {
      if (existing && a.applyingReset) await this.snapshots.delete(run.id) // another reset replaces the snapshot
      else if (existing?.phase === 'live') run.lastSnapshot = finishedProgress(existing)
      return
    }
    run.snapshot = new SnapshotRun(doc, a.positions)
  }

  /** The catch-up pass for a snapshotting run: true while it scans (no reader feeds it yet). */
  #snapshotPass(run: Run): boolean {
    const snap = run.snapshot!
    if (snap.phase === 'scanning') {
      // a scan is a reader of its own: it counts against maxCatchUpReaders
      if (!snap.scan && run.desiredState === 'running' && Date.now() >= snap.retryAt && this.#catchUps < this.settings.maxCatchUpReaders) this.#startScan(run, snap)
      return true
    }
    if (snap.phase === 'delivering' && snap.complete(this.#positionsOf(run))) {
      snap.finished()
      run.snapshot = null
      this.#dispatchVersion++
      run.lastSnapshot = finishedProgress(snap.doc)
      this.#log.info('snapshot complete: live from here on', { subscriptionId: run.id, snapshotId: snap.doc.snapshotId, keys: snap.doc.total })
      this.#serialBg(run, async () => {
        await this.#saveSnapshot(run, snap.doc)
        await this.#reportRun(run, true)
      })
    }
    return false
  }

  #startScan(run: Run, snap: SnapshotRun): void {
    snap.scanned = 0
    const ranges = [...snap.highs].map(([k, high]) => {
      const [topic, partition] = splitKey(k)
      return { topic, partition, from: Math.min(high, run.parts.get(k)?.next ?? high), high }
    })
    const scan = scanLatest({
      kafka: this.#d.kafka,
      groupId: `${this.settings.groupId}.snapshot.${run.id}`,
      ranges,
      deliverable: (topic, m) => {
        const h = m.headers?.ce_type
        const type = h === undefined ? undefined : String(Array.isArray(h) ? h[h.length - 1] : h)
        return run.wanted.has(topic) || type === undefined || run.wanted.has(type)
      },
      onScanned: (n) => (snap.scanned += n),
      logger: this.#log,
    })
    snap.scan = scan
    this.#catchUps++
    scan.result.then(
      (winners) => {
        this.#catchUps--
        if (run.stopped || run.snapshot !== snap || snap.scan !== scan) return
        snap.scan = null
        snap.scannedAll(winners)
        this.#log.info('snapshot scanned: delivering the latest record of every key', { subscriptionId: run.id, snapshotId: snap.doc.snapshotId, keys: snap.doc.total, scanned: snap.scanned })
        this.#serialBg(run, async () => {
          await this.#saveSnapshot(run, snap.doc)
          await this.#reportRun(run, true)
        })
      },
      (err: unknown) => {
        this.#catchUps--
        if (snap.scan === scan) snap.scan = null
        snap.retryAt = Date.now() + 5000
        if (!run.stopped) this.#log.warn('snapshot scan failed; it starts again', { subscriptionId: run.id, error: err })
      },
    )
  }

  async #saveSnapshot(run: Run, doc: SnapshotDoc): Promise<void> {
    if (run.stopped || !this.#leaseValid()) return
    await this.snapshots.put({ ...doc, workerId: this.settings.workerId, updatedAt: new Date() })
  }

  // ------------------------------------------------------------------ readers

  /** Offers one message to a run: enqueue when wanted, skip otherwise; detaches a run holding too much. */
  #offer(run: Run, m: DecodedMessage): void {
    const type = m.eventType
    const wanted = (run.wanted.has(m.topic) || (type !== undefined && run.wanted.has(type)) || type === undefined) && (!run.snapshot || run.snapshot.wants(tpKey(m.topic, m.partition), Number(m.offset)))
    if (wanted) this.queue.enqueue(run.id, m.record(run.readers.get(m.topic)))
    else this.queue.skip(run.id, m.topic, m.partition, m.offset)
  }

  async #startShared(cursors: Map<string, CursorDoc>): Promise<void> {
    const d = this.#d
    const s = this.settings
    const start = new Map<string, number>()
    for (const t of d.topics) {
      for (const p of this.#partitions.get(t.name) ?? []) {
        const k = tpKey(t.name, p)
        let pos = this.#high.get(k) ?? 0
        for (const c of cursors.values()) {
          const v = c.positions[k]
          if (v !== undefined && Number(v) < pos) pos = Number(v)
        }
        start.set(k, Math.max(pos, this.#low.get(k) ?? 0))
      }
    }
    // A group per process start: a process restarted under the same worker id after kill -9 would
    // otherwise wait for its predecessor's member to time out of the group (sessionTimeout, 10 s)
    // before it reads anything. Nothing depends on the group's offsets: the start is the cursors'.
    const consumer = d.kafka.consumer({ groupId: `${s.groupId}.${s.workerId}.${this.#incarnation.slice(0, 8)}`, ...READER_OPTIONS })
    this.#shared = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: d.topics.map((t) => t.name), fromBeginning: false })
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.#sharedBatch(payload),
    })
    for (const [k, offset] of start) {
      const [topic, partition] = splitKey(k)
      consumer.seek({ topic, partition, offset: String(offset) })
      this.#sharedNext.set(k, offset)
    }
    // a re-join resumes from the group's offsets: commit the start at once, never a later default
    await consumer.commitOffsets([...start].map(([k, offset]) => ({ topic: splitKey(k)[0], partition: splitKey(k)[1], offset: String(offset) })))
    for (const [k, offset] of start) this.#committed.set(k, offset)
  }

  async #sharedBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch
    const k = tpKey(topic, partition)
    if (!this.#sharedNext.has(k)) return // before the start seek: discarded
    this.#high.set(k, Number(batch.highWatermark))
    await loadSchemas(this.#d.serde, batch.messages, this.#unknownSchemas)
    const targets: Run[] = []
    const metrics = this.#d.metrics
    const filtered = metrics ? (sink: string, count: number) => metrics.deliveries.inc({ sink, outcome: 'filtered' }, count) : undefined
    let n = 0
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      const offset = Number(message.offset)
      this.#sharedNext.set(k, offset + 1)
      const index = this.#dispatchIndex(topic, k)
      if (index.all.length > 0) {
        const m = new DecodedMessage(this.#d.serde, topic, partition, message)
        targets.length = 0
        index.select(index.indexed > 0 ? m.record().value : undefined, targets, filtered)
        for (const run of targets) {
          if (!run.parts.get(k)?.attached) continue // detached by an earlier record of this loop
          this.#offer(run, m)
          if (this.queue.buffered(run.id) >= this.settings.maxBuffered) {
            this.#log.info('subscription falls behind: leaving the shared stream for a catch-up reader', { subscriptionId: run.id, buffered: this.queue.buffered(run.id) })
            this.#detachAll(run)
            run.throttled = true
          }
        }
      }
      resolveOffset(message.offset)
      if (++n % 500 === 0) await heartbeat()
    }
  }

  /** The attached subscriptions of a topic-partition, indexed by row filter (rebuilt after any change of who is attached). */
  #dispatchIndex(topic: string, k: string): DispatchIndex<Run> {
    const cached = this.#dispatch.get(k)
    if (cached?.version === this.#dispatchVersion) return cached.index
    const entries = []
    for (const run of this.#byTopic.get(topic) ?? []) {
      if (!run.parts.get(k)?.attached) continue
      entries.push({ run, filter: run.sub.filter, partnerId: run.sub.partnerId, sinkType: run.sub.sink.type, indexable: !run.readers.has(topic) && !run.snapshot })
    }
    const index = new DispatchIndex(entries)
    this.#dispatch.set(k, { version: this.#dispatchVersion, index })
    return index
  }

  /** Starts and stops catch-up readers, re-attaches caught-up partitions; shares the slots in turns. */
  #catchUpPass(): void {
    const now = Date.now()
    const waiting: Run[] = []
    for (const run of this.#runs.values()) {
      if (!this.#wantsReader(run)) {
        run.waitingForReader = 0
        continue
      }
      if (run.waitingForReader === 0) run.waitingForReader = now
      waiting.push(run)
    }
    if (waiting.length === 0) return
    waiting.sort((a, b) => a.waitingForReader - b.waitingForReader)
    let started = 0
    for (const run of waiting) {
      if (this.#catchUps >= this.settings.maxCatchUpReaders) break
      run.waitingForReader = 0
      run.throttled = false
      this.#startCatchUp(run)
      started++
    }
    // Others still wait: readers that had their turn yield their slots (the next pass starts the waiters).
    let yielding = waiting.length - started
    if (yielding <= 0) return
    const turnsOver = [...this.#runs.values()]
      .filter((r) => r.catchUp !== null && r.catchUp.stopping === null && now - r.catchUp.startedAt >= this.settings.catchUpSliceMs)
      .sort((a, b) => a.catchUp!.startedAt - b.catchUp!.startedAt)
    for (const run of turnsOver) {
      if (yielding-- <= 0) break
      this.#log.info('catch-up reader yields its slot to a waiting subscription', { subscriptionId: run.id, ranMs: now - run.catchUp!.startedAt })
      run.waitingForReader = now // back of the line
      this.#catchUpYields++
      void this.#stopCatchUp(run)
    }
  }

  /** Re-attaches caught-up partitions, stops a reader no longer needed; true when the run needs a catch-up reader it does not have. */
  #wantsReader(run: Run): boolean {
    if (run.stopped || run.failure) return false
    if (run.snapshot && this.#snapshotPass(run)) return false
    let detached = 0
    for (const part of run.parts.values()) {
      if (part.attached) continue
      const shared = this.#sharedNext.get(part.key)
      if (run.desiredState === 'running' && shared !== undefined && part.next >= shared) {
        this.#attach(run, part)
        continue
      }
      detached++
    }
    if (detached === 0 || run.desiredState !== 'running') {
      if (run.catchUp) void this.#stopCatchUp(run)
      return false
    }
    if (run.catchUp) return false
    const buffered = this.queue.buffered(run.id)
    if (run.throttled && buffered > this.settings.maxBuffered / 2) return false
    if (this.queue.stats(run.id).status === 'disabled') return false
    return true
  }

  #attach(run: Run, part: Part): void {
    part.attached = true
    this.#dispatchVersion++
    run.catchUp?.consumer.pause([{ topic: part.topic, partitions: [part.partition] }])
  }

  #startCatchUp(run: Run): void {
    const consumer = this.#d.kafka.consumer({ groupId: `${this.settings.groupId}.catch-up.${run.id}.${randomUUID().slice(0, 8)}`, ...READER_OPTIONS })
    const cu: CatchUp = { consumer, stopping: null, startedAt: Date.now() }
    run.catchUp = cu
    this.#catchUps++
    const begin = async () => {
      await consumer.connect()
      await consumer.subscribe({ topics: run.topics, fromBeginning: true })
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: (payload) => this.#catchUpBatch(run, cu, payload) })
      for (const part of run.parts.values()) {
        if (part.attached) consumer.pause([{ topic: part.topic, partitions: [part.partition] }])
        else consumer.seek({ topic: part.topic, partition: part.partition, offset: String(part.next) })
      }
    }
    this.#log.info('catch-up reader started', { subscriptionId: run.id, from: Object.fromEntries([...run.parts.values()].filter((p) => !p.attached).map((p) => [p.key, p.next])) })
    begin().catch((err: unknown) => {
      this.#log.warn('catch-up reader failed; it will be started again', { subscriptionId: run.id, error: err })
      void this.#stopCatchUp(run)
    })
  }

  async #catchUpBatch(run: Run, cu: CatchUp, { batch, resolveOffset, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (run.catchUp !== cu || cu.stopping || run.stopped) return
    const { topic, partition } = batch
    const k = tpKey(topic, partition)
    const part = run.parts.get(k)
    if (!part || part.attached) return
    const high = Number(batch.highWatermark)
    if (high > (this.#high.get(k) ?? 0)) this.#high.set(k, high)
    await loadSchemas(this.#d.serde, batch.messages, this.#unknownSchemas)
    if (run.catchUp !== cu || cu.stopping || run.stopped || part.attached) return
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      const offset = Number(message.offset)
      if (offset < part.next) {
        resolveOffset(message.offset)
        continue
      }
      const shared = this.#sharedNext.get(k)
      if (shared !== undefined && offset >= shared) {
        this.#attach(run, part)
        break
      }
      this.#offer(run, new DecodedMessage(this.#d.serde, topic, partition, message))
      part.next = offset + 1
      resolveOffset(message.offset)
      if (shared !== undefined && part.next >= shared) {
        this.#attach(run, part)
        break
      }
      if (this.queue.buffered(run.id) >= this.settings.maxBuffered) {
        run.throttled = true
        void this.#stopCatchUp(run)
        break
      }
    }
  }

  #stopCatchUp(run: Run): Promise<void> {
    const cu = run.catchUp
    if (!cu) return Promise.resolve()
    if (!cu.stopping) {
      cu.stopping = cu.consumer
        .disconnect()
        .catch(() => undefined)
        .finally(() => {
          if (run.catchUp === cu) run.catchUp = null
          this.#catchUps--
        })
    }
    return cu.stopping
  }

  // ------------------------------------------------------------------ positions, control, status

  #positionsOf(run: Run): Record<string, string> {
    if (run.finalPositions) return run.finalPositions
    const out: Record<string, string> = {}
    if (!this.queue.has(run.id)) {
      for (const p of run.parts.values()) out[p.key] = String(p.next)
      return out
    }
    for (const p of run.parts.values()) out[p.key] = this.queue.safeOffset(run.id, p.topic, p.partition, this.#seen(p)) ?? String(p.next)
    return out
  }

  /** Everything below this offset was offered to the part's subscription or left out by the dispatch index. */
  #seen(part: Part): number {
    return part.attached ? (this.#sharedNext.get(part.key) ?? part.next) : part.next
  }

  /** Writes the cursors that changed (all with `force`); at most `limit`, those written longest ago first. */
  async #writeCursors(runs: Run[], force = false, limit = Infinity): Promise<void> {
    if (!this.#leaseValid()) return
    let changed: Array<{ run: Run; json: string; positions: Record<string, string> }> = []
    for (const run of runs) {
      if (run.failure) continue
      const positions = this.#positionsOf(run)
      const json = JSON.stringify([positions, run.appliedResetId])
      if (!force && json === run.lastCursor) continue
      changed.push({ run, json, positions })
    }
    if (changed.length > limit) changed = changed.sort((a, b) => a.run.lastCursorAt - b.run.lastCursorAt).slice(0, limit)
    const now = new Date()
    await this.store.writeCursors(changed.map(({ run, positions }) => ({ _id: run.id, positions, appliedResetId: run.appliedResetId, workerId: this.settings.workerId, updatedAt: now })))
    for (const { run, json } of changed) {
      run.lastCursor = json
      run.lastCursorAt = now.getTime()
    }
  }

  /** Cursors first, then the shared group's commit (the minimum of the attached subscriptions). */
  async #flushPass(): Promise<void> {
    await this.#writeCursors([...this.#runs.values()].filter((r) => !r.stopped), false, MAX_CURSOR_WRITES_PER_FLUSH)
    await this.#commitShared()
  }

  async #commitShared(): Promise<void> {
    const consumer = this.#shared
    if (!consumer) return
    const commits: Array<{ topic: string; partition: number; offset: string }> = []
    for (const [k, next] of this.#sharedNext) {
      const [topic, partition] = splitKey(k)
      let min = next
      for (const run of this.#byTopic.get(topic) ?? []) {
        const part = run.parts.get(k)
        if (!part?.attached || !this.queue.has(run.id)) continue
        const safe = Number(this.queue.safeOffset(run.id, topic, partition, this.#seen(part)) ?? part.next)
        if (safe < min) min = safe
      }
      if (this.#committed.get(k) !== min) {
        commits.push({ topic, partition, offset: String(min) })
        this.#committed.set(k, min)
      }
    }
    if (commits.length > 0) await consumer.commitOffsets(commits)
  }

  async #controlPass(): Promise<void> {
    const cp = this.#d.controlPlane
    const changed = await cp.connectorsChangedSince(new Date(this.#since.getTime() - 2000))
    for (const c of changed) {
      if (c.updatedAt > this.#since) this.#since = c.updatedAt
      const run = this.#runs.get(c._id)
      if (run && c.generation !== run.generation) this.#serialBg(run, () => this.#apply(run, c))
    }
    await this.#retryPass()
  }

  /**
   * Retry requests: the oldest pending one of each held subscription, each subscription's in turn and
   * in the background (one subscription's long retry holds up no other's, nor this pass). Requests of
   * deleted subscriptions are completed with that outcome (every RETRY_SWEEP_MS); a stopped
   * subscription's wait until it runs again (docs/sink-workers.md).
   */
  async #retryPass(): Promise<void> {
    const cp = this.#d.controlPlane
    if (Date.now() >= this.#nextRetrySweep) {
      this.#nextRetrySweep = Date.now() + RETRY_SWEEP_MS
      const completed = await cp.deliveries.completeRetryRequestsOfDeleted()
      if (completed > 0) this.#log.info('retry requests of deleted subscriptions completed', { count: completed })
    }
    const idle = [...this.#runs.values()].filter((r) => !r.failure && !r.stopped && !this.#retrying.has(r.id)).map((r) => r.id)
    for (const first of await cp.deliveries.nextRetryRequests(idle)) {
      const run = this.#runs.get(first.subscriptionId)
      if (!run || run.failure || run.stopped || this.#retrying.has(run.id)) continue
      // this subscription's requests one after the other, until none is left (or the run stops)
      const drain = async () => {
        for (let req: RetryRequestDoc | undefined = first; req && (await this.#retryRequest(run, req)); ) req = (await cp.deliveries.nextRetryRequests([run.id]))[0]
      }
      const done = drain()
        .catch((err: unknown) => this.#log.warn('retry request failed; it is taken up again', { subscriptionId: run.id, error: err }))
        .finally(() => this.#retrying.delete(run.id))
      this.#retrying.set(run.id, done)
    }
  }

  /** Re-delivers what a retry request names from the stored dead letters, then completes it; false when the run stopped first (its next holder does it). */
  async #retryRequest(run: Run, req: RetryRequestDoc): Promise<boolean> {
    const cp = this.#d.controlPlane
    const docs: DeliveryDoc[] =
      req.kind === 'event'
        ? [await cp.deliveries.get(req.subscriptionId, req.eventId!)].filter((d): d is DeliveryDoc => d !== null)
        : await cp.cols.deliveries.find({ subscriptionId: req.subscriptionId, status: 'dead' }).limit(1000).toArray()
    const out = { redelivered: 0, superseded: 0, failed: 0 }
    const items: Array<{ doc: DeliveryDoc; record: SinkRecord }> = []
    for (const doc of docs) {
      if (run.stopped) return false
      const record = await this.#deadLetterRecord(run, doc)
      if (record) items.push({ doc, record })
      else if (doc.deadLetter) out.failed++
    }
    await this.#redeliverInLanes(run, items, out)
    if (run.stopped) return false
    const more = [out.superseded > 0 ? `${out.superseded} superseded by a newer record of their key` : '', out.failed > 0 ? `${out.failed} failed` : ''].filter(Boolean)
    await cp.deliveries.completeRetryRequest(req._id, [`re-delivered ${out.redelivered} of ${docs.length}`, ...more].join('; '))
    return true
  }

  /** The stored dead letter of `doc` as a record to deliver again; null when there is none, or it cannot be (poison, not entitled: so marked). */
  async #deadLetterRecord(run: Run, doc: DeliveryDoc): Promise<SinkRecord | null> {
    const dl = doc.deadLetter
    if (!dl) {
      this.#log.warn('retry request for a delivery without a stored dead letter: nothing to re-deliver', { subscriptionId: run.id, eventId: doc.eventId, status: doc.status })
      return null
    }
    const message = deadLetterMessage(dl)
    await loadSchemas(this.#d.serde, [message], this.#unknownSchemas).catch(() => undefined)
    const record = new DecodedMessage(this.#d.serde, dl.topic, dl.partition, message).record(run.readers.get(dl.topic))
    // entitlement before poison, as in #deliver
    await this.#deliverable(run, undefined)
    if (!this.#entitled(run, record)) {
      await this.#markDeadAgain(run, doc, `retry failed: ${NOT_ENTITLED}`)
      return null
    }
    const poison = undeliverable(record, run.sink)
    if (poison) {
      await this.#markDeadAgain(run, doc, `retry failed: poison: ${poison.message}`)
      return null
    }
    return record
  }

  /**
   * Delivers dead letters again, each in its key's lane (DeliveryQueue.inject: never beside nor
   * before another record of its key), unless it is SUPERSEDED: a newer record of its key was read by
   * the subscription since, and delivering it now would put an older version after a newer one. A
   * dead letter is superseded by a later dead letter of its key in the request, by a newer record of its
   * key in its partition below what the subscription had read when this began (one Kafka scan per
   * request, from the oldest dead letter), by one enqueued since (a watch), or by one its lane holds.
   * Superseded ones stay dead, with the reason. Resolves once every one is delivered or failed again.
   */
  async #redeliverInLanes(run: Run, items: Array<{ doc: DeliveryDoc; record: SinkRecord }>, out: { redelivered: number; superseded: number; failed: number }): Promise<void> {
    if (items.length === 0 || run.stopped) return
    const latest = new Map<string, number>()
    for (const { record } of items) if (record.key !== null) latest.set(laneKey(record), Math.max(latest.get(laneKey(record)) ?? -1, Number(record.offset)))
    const superseded: DeliveryDoc[] = []
    const live = items.filter(({ doc, record }) => {
      const keep = record.key === null || Number(record.offset) === latest.get(laneKey(record))
      if (!keep) superseded.push(doc)
      return keep
    })
    // In one tick: watch each key, and note how far the subscription has read each partition.
    const watches = live.map(({ record }) => (record.key === null ? null : this.queue.watch(run.id, record)))
    const ranges = new Map<string, ScanRange & { seed: Array<{ key: Buffer | null; offset: number }> }>()
    const scanned = new Set<SinkRecord>()
    for (const { record } of live) {
      const k = tpKey(record.topic, record.partition)
      const part = run.parts.get(k)
      const offset = Number(record.offset)
      if (record.key === null || !part || offset + 1 >= this.#seen(part)) continue
      let range = ranges.get(k)
      if (!range) ranges.set(k, (range = { topic: record.topic, partition: record.partition, from: offset + 1, high: this.#seen(part), seed: [] }))
      range.from = Math.min(range.from, offset + 1)
      range.seed.push({ key: rawOf(record)?.key ?? null, offset })
      scanned.add(record)
    }
    const pending: Array<Promise<void>> = []
    try {
      const winners =
        ranges.size === 0
          ? new Map<string, Float64Array>()
          : await this.#retryScans.run(() => scanLatest({ kafka: this.#d.kafka, groupId: `${this.settings.groupId}.retry.${run.id}`, ranges: [...ranges.values()], deliverable: () => true, logger: this.#log }).result)
      if (run.stopped) return
      // In one tick with the watches' verdicts: queued behind what the lane holds (or refused when it holds anything).
      live.forEach(({ doc, record }, i) => {
        const w = winners.get(tpKey(record.topic, record.partition))
        const offset = Number(record.offset)
        const newer = (scanned.has(record) && !(w && w[countBelow(w, offset)] === offset)) || watches[i]?.enqueuedSince() === true
        const delivered = newer ? null : this.queue.inject(run.id, record, { deliver: (r, { signal }) => this.#deliver(run, r, signal, true), policy: REDELIVERY_POLICY, ifLatest: record.key !== null })
        if (!delivered) return void superseded.push(doc)
        pending.push(
          delivered.then(
            () => {
              out.redelivered++
              this.#log.info('dead letter re-delivered on request', { subscriptionId: run.id, eventId: record.eventId })
            },
            async (err: unknown) => {
              if (run.stopped) return
              out.failed++
              await this.#markDeadAgain(run, doc, `retry failed: ${err instanceof Error ? err.message : String(err)}`)
            },
          ),
        )
      })
    } finally {
      for (const w of watches) w?.close()
    }
    await Promise.all(pending)
    for (const doc of superseded) await this.#markDeadAgain(run, doc, SUPERSEDED)
    out.superseded += superseded.length
  }

  /** The delivery stays dead, with a new reason (its dead letter kept for another request). */
  #markDeadAgain(run: Run, doc: DeliveryDoc, reason: string): Promise<void> {
    return this.#logWrite(run.id, doc.eventId, () =>
      this.#d.controlPlane.deliveries.markDead({
        subscriptionId: run.id,
        partnerId: run.sub.partnerId,
        publisherId: doc.publisherId ?? null,
        eventId: doc.eventId,
        eventType: doc.eventType,
        key: doc.key,
        reason,
        source: doc.source,
        deadLetter: doc.deadLetter!,
      }), false)
  }

  async #statusPass(): Promise<void> {
    for (const t of this.#d.topics) await this.#refreshOffsets(t.name).catch(() => undefined)
    await this.#reportRuns([...this.#runs.values()], false)
  }

  #reportRun(run: Run, changedOnly: boolean): Promise<void> {
    return this.#reportRuns([run], changedOnly)
  }

  /** The statuses of runs that changed (or are due), in one command. */
  async #reportRuns(runs: Run[], changedOnly: boolean): Promise<void> {
    if (!this.#leaseValid()) return
    const reports: Array<[string, ConnectorStatus]> = []
    for (const run of runs) {
      const status = this.#statusOf(run, changedOnly)
      if (status) reports.push([run.id, status])
    }
    if (reports.length === 1) await this.#report(reports[0]![0], reports[0]![1])
    else await this.#d.controlPlane.reportConnectorStatuses(reports)
  }

  /** The run's status when it is to be reported (changed, or due), else null. */
  #statusOf(run: Run, changedOnly: boolean): ConnectorStatus | null {
    if (run.stopped) return null
    let state: ConnectorStatus['state'] = run.desiredState === 'paused' ? 'paused' : 'running'
    if (run.failure || (this.queue.has(run.id) && this.queue.stats(run.id).status === 'disabled')) state = 'failed'
    const positions = run.failure ? {} : this.#positionsOf(run)
    let lag = 0
    for (const [k, v] of Object.entries(positions)) lag += Math.max(0, (this.#high.get(k) ?? 0) - Number(v))
    const snapshot = run.snapshot ? run.snapshot.progress(positions) : run.lastSnapshot
    if (state === 'running' && snapshot && snapshot.phase !== 'live') state = 'snapshotting'
    const status = { ...this.#status(state, run.generation, run.appliedResetId, positions, lag, run.lastError), snapshot }
    this.#d.metrics?.subscriptionLag.set({ subscription: run.id }, lag)
    const key = JSON.stringify([state, run.generation, run.appliedResetId, run.lastError?.message ?? null, snapshot?.phase ?? null])
    if (changedOnly && key === run.lastReport) return null
    if (!changedOnly && key === run.lastReport && Date.now() - run.lastReportAt < this.settings.statusIntervalMs / 2) return null
    run.lastReport = key
    run.lastReportAt = Date.now()
    return status
  }

  #status(state: ConnectorStatus['state'], generation: number, resetId: string | null, positions: Record<string, string>, lag: number | null, lastError: Run['lastError']): ConnectorStatus {
    return {
      state,
      workerId: this.settings.workerId,
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

  #report(id: string, status: ConnectorStatus): Promise<void> {
    return this.#d.controlPlane.reportConnectorStatus(id, status)
  }

  async #refreshOffsets(topic: string): Promise<void> {
    const offsets = await this.#admin!.fetchTopicOffsets(topic)
    this.#partitions.set(topic, offsets.map((o) => o.partition).sort((a, b) => a - b))
    for (const o of offsets) {
      const k = tpKey(topic, o.partition)
      this.#low.set(k, Number(o.low))
      if (Number(o.high) > (this.#high.get(k) ?? 0)) this.#high.set(k, Number(o.high))
    }
  }

  async #resetPositions(topics: string[], reset: OffsetReset): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for (const t of topics) {
      const offsets = await this.#admin!.fetchTopicOffsets(t)
      const byTime = reset.to === 'timestamp' && reset.timestamp ? await this.#admin!.fetchTopicOffsetsByTimestamp(t, new Date(reset.timestamp).getTime()) : []
      for (const o of offsets) {
        const k = tpKey(t, o.partition)
        let pos = reset.to === 'earliest' || reset.to === 'snapshot' ? Number(o.low) : Number(o.high)
        if (reset.to === 'timestamp') {
          const found = byTime.find((b) => b.partition === o.partition)
          const v = found ? Number(found.offset) : -1
          pos = v >= 0 ? v : Number(o.high)
        }
        out.set(k, Math.max(pos, Number(o.low)))
      }
    }
    return out
  }
}

/** The subscription's retry schedule (seconds in the control plane) as the queue's policy. */
export function deliveryPolicy(sub: SubscriptionDoc, defaults: DeliveryDefaults): SchedulePolicy {
  const seconds = sub.deliveryPolicy?.retrySchedule
  if (!Array.isArray(seconds) || seconds.length === 0) return defaults.policy
  return { ...defaults.policy, delaysMs: seconds.map((s) => Math.max(0, s * 1000)) }
}

/** The store did not take a write (unreachable, too slow to be selected, a cleared pool): worth writing again. */
function storeUnavailable(err: unknown): boolean {
  return err instanceof MongoNetworkError || err instanceof MongoServerSelectionError || (err instanceof MongoError && (err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('ResetPool')))
}

/** Why a run's partner calls were aborted. */
const STOPPED = new Error('subscription stopped here (handed over, changed or removed)')
const FENCED = new Error('leases not renewed in time: the call is sent again once they are')

/** The controller of a run's partner calls: one signal shared by every call of the run. */
function callsController(): AbortController {
  const c = new AbortController()
  setMaxListeners(0, c.signal) // one listener per call in flight (up to the run's concurrency)
  return c
}

/** A promise and its resolve (Promise.withResolvers from Node 22). */
function signalled(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

function splitKey(k: string): [string, number] {
  const i = k.lastIndexOf('|')
  return [k.slice(0, i), Number(k.slice(i + 1))]
}

function shuffle<T>(a: T[]): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Partial<T>
}

