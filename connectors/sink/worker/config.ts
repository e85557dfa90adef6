/**
 * What a sink worker is built from: its dependencies and its settings (config/schema.ts `worker.*`).
 */
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import type { Kafka } from '../../../common/kafka/index.ts'
import type { Db } from 'mongodb'
import type { Logger } from '../../../common/logger.ts'
import type { Metrics } from '../../../common/metrics.ts'
import type { AppConfig } from '../../../config/index.ts'
import type { ControlPlane } from '../../../control-plane/service.ts'
import type { AvroSerde } from '../../../schemas/serde/serde.ts'
import type { TopicSpec } from '../../../schemas/topics.ts'
import type { DeliveryQueue } from '../delivery-queue.ts'
import type { DeliveryDefaults } from '../settings.ts'
import type { SinkFactory } from '../types.ts'
import type { Positions } from './positions.ts'
import type { HeldRuns } from './run.ts'

/**
 * The `worker.*` settings (config/schema.ts), with the worker's id resolved; `retryPageSize` is internal (no
 * setting: the tests lower it): the dead letters a retry of every one takes at a time (retry-requests.ts).
 */
export type SinkWorkerSettings = Omit<AppConfig['worker'], 'id'> & { workerId: string; retryPageSize?: number }

export type { SinkFactory }

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

/** What every part of a worker (its readers, its runs, its control loop) is given: the worker's own state and log. */
export interface WorkerCore {
  deps: SinkWorkerDeps
  settings: SinkWorkerSettings
  queue: DeliveryQueue
  held: HeldRuns
  positions: Positions
  log: Logger
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
  collapseIndexMaxKeys: 1_000_000,
}

export function defaultWorkerId(): string {
  return `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`
}

/** The settings given over the defaults (unset and empty ones left out), with a worker id. */
export function workerSettings(given: Partial<SinkWorkerSettings>): SinkWorkerSettings {
  const settings = {
    workerId: given.workerId || defaultWorkerId(),
    ...WORKER_DEFAULTS,
    ...stripUndefined(given),
  } as SinkWorkerSettings
  if (!settings.workerId) settings.workerId = defaultWorkerId()
  return settings
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Partial<T>
}
