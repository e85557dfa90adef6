/**
 * What every part of the sink worker shares (the design: connectors/sink/worker.ts): a held
 * subscription as the worker runs it (a Run) and its partitions (Parts), the runs a worker holds and
 * the version of who is attached where, the abort of a run's partner calls, a run's control
 * operations one after the other, and the readers' slots.
 */
import { setMaxListeners } from 'node:events'
import type avro from 'avsc'
import type { Consumer } from '../../../common/kafka/index.ts'
import type { Logger } from '../../../common/logger.ts'
import type { ConnectorDoc, ConnectorStatus, SnapshotProgress, SubscriptionDoc } from '../../../control-plane/types.ts'
import type { SnapshotDoc, SnapshotRun } from '../snapshot.ts'
import type { CursorDoc } from '../store.ts'
import type { SinkConnector, SinkRecord } from '../types.ts'

export interface Part {
  topic: string
  partition: number
  key: string
  /** Fed by the shared reader (true) or by the subscription's catch-up reader (false). */
  attached: boolean
  /** Detached: the next offset the catch-up reader hands over. */
  next: number
}

export interface CatchUp {
  consumer: Consumer
  stopping: Promise<void> | null
  startedAt: number
  /**
   * Its partitions are paused: the subscription holds `maxBuffered` records. It resumes where it stopped once half
   * of them are delivered (a consumer kept, not a new one joining a group of its own each time).
   */
  paused: boolean
  /**
   * Partitions it paused in its consumer because the shared reader feeds them (attached at its start, or caught up
   * since). When the subscription falls behind again while this reader runs, they are detached once more and must be
   * read here again: resuming the reader seeks and resumes every detached partition (catch-up.ts).
   */
  handedOver: Set<string>
}

export interface Run {
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
  inflight: Map<string, { record: SinkRecord; forceLog: boolean; signal: AbortSignal; test?: boolean }>
  /**
   * Events with a failed attempt in the delivery log: their success is logged even where successes are not (it closes
   * the entry).
   */
  failedLogged: Set<string>
  /** Aborts this run's partner calls in flight (stop, hand-over; the lease fence, which replaces it). */
  calls: AbortController
  /** The positions when the run stopped (its queue is gone by then). */
  finalPositions: Record<string, string> | null
  lastError: { code: string; message: string; at: Date } | null
  lastReport: string
  lastReportAt: number
  lastCursor: string
  /** Serialises control operations on this run. */
  ops: Promise<void>
  stopped: boolean
  /** An unfinished snapshot bootstrap (snapshot.ts); null otherwise. */
  snapshot: SnapshotRun | null
  /** The last finished snapshot, for the status. */
  lastSnapshot: SnapshotProgress | null
  /** Since when its freshness is above its objective (ms; null: within it), carried over from the stored status. */
  freshnessBreachedSince: number | null
}

/** A run as it starts: nothing read, nothing delivered, nothing reported yet. */
export function newRun(id: string, sub: SubscriptionDoc, conn: ConnectorDoc, topics: string[]): Run {
  return {
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
    ops: Promise.resolve(),
    stopped: false,
    snapshot: null,
    lastSnapshot: null,
    freshnessBreachedSince: conn.status?.freshnessBreachedSince
      ? new Date(conn.status.freshnessBreachedSince).getTime()
      : null,
  }
}

export interface StopOptions {
  /** Write the cursor (when the lease is surely ours). */
  flush: boolean
  /** Release the lease. */
  release: boolean
  /** Report this state. */
  state?: ConnectorStatus['state']
}

/** A subscription's documents, read in a batch before its run starts. */
export interface Preloaded {
  sub: SubscriptionDoc | null
  conn: ConnectorDoc | null
  cursor: CursorDoc | null
  snapshot: SnapshotDoc | null
}

/** The subscriptions a worker runs (and those it is starting), by id and by topic. */
export class HeldRuns {
  readonly runs = new Map<string, Run>()
  readonly starting = new Map<string, Promise<void>>()
  readonly byTopic = new Map<string, Set<Run>>()
  /**
   * The runs the catch-up pass looks after (catch-up.ts): a partition detached from the shared stream, a
   * catch-up reader or a snapshot bootstrap. The others are attached everywhere and cost the pass nothing.
   */
  readonly behind = new Set<Run>()
  /**
   * Moves with every change of who is attached where: the shared reader's dispatch indexes are rebuilt then
   * (shared-reader.ts).
   */
  dispatchVersion = 0

  changed(): void {
    this.dispatchVersion++
  }
}

/**
 * The Kafka readers of a worker besides the shared one (catch-up readers, snapshot scans): at most
 * `max` at a time (maxCatchUpReaders).
 */
export class ReaderSlots {
  used = 0
  constructor(readonly max: number) {}

  get free(): boolean {
    return this.used < this.max
  }
}

/** Why a run's partner calls were aborted. */
export const STOPPED = new Error('subscription stopped here (handed over, changed or removed)')
export const FENCED = new Error('leases not renewed in time: the call is sent again once they are')

/** The controller of a run's partner calls: one signal shared by every call of the run. */
export function callsController(): AbortController {
  const c = new AbortController()
  setMaxListeners(0, c.signal) // one listener per call in flight (up to the run's concurrency)
  return c
}

/**
 * Aborts the run's partner calls in flight as FENCED (they go again: delivery.ts); calls from now on get a new signal.
 */
export function fenceCalls(run: Run): void {
  const calls = run.calls
  run.calls = callsController()
  calls.abort(FENCED)
}

/** Runs `fn` after the run's earlier control operations (one at a time per run). */
export function serial(run: Run, fn: () => Promise<void>, log: Logger): Promise<void> {
  const next = run.ops.then(fn, fn)
  run.ops = next.catch((err: unknown) =>
    log.error('subscription control operation failed', { subscriptionId: run.id, error: err }),
  )
  return next
}

/** `serial`, not awaited (a failure is logged there). */
export function serialBg(run: Run, fn: () => Promise<void>, log: Logger): void {
  serial(run, fn, log).catch(() => undefined)
}

/** A promise and its resolve (Promise.withResolvers from Node 22). */
export function signalled(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

/** The topic and partition of a `tpKey` (store.ts). */
export function splitKey(k: string): [string, number] {
  const i = k.lastIndexOf('|')
  return [k.slice(0, i), Number(k.slice(i + 1))]
}
