export type { SinkConnector, SinkContext, SinkRecord, AttemptReport, PutOptions } from './types.ts'
export { DeliveryQueue } from './delivery-queue.ts'
export type {
  DeliverFn,
  SubscriptionOptions,
  DeliveredInfo,
  FailedAttemptInfo,
  DeadLetterInfo,
  DeliveryQueueEvents,
  DeliveryQueueOptions,
  SubscriptionStatus,
  SubscriptionStats,
  Position,
} from './delivery-queue.ts'
export { Fifo } from './fifo.ts'
export { deliveryDefaults, mongoSinkClientSettings, webhookClientSettings } from './settings.ts'
export type { DeliveryDefaults } from './settings.ts'
export { SinkWorker, WORKER_DEFAULTS, defaultWorkerId, deliveryPolicy } from './worker.ts'
export type { SinkWorkerSettings, SinkWorkerDeps, SinkFactory } from './worker.ts'
export { SinkStore, SINK_COLLECTIONS, tpKey } from './store.ts'
export type { LeaseDoc, WorkerDoc, CursorDoc } from './store.ts'
export { DecodedMessage, poisonOf, rawOf, displayKey, isTombstone, undeliverable } from './records.ts'
export type { RawRecord } from './records.ts'
export { SnapshotRun, SnapshotStore, SNAPSHOT_COLLECTION, snapshotDecision } from './snapshot.ts'
export type { SnapshotDoc, SnapshotPhase } from './snapshot.ts'
export { LatestOffsetTable, scanLatest, readRanges, countBelow } from './scan.ts'
export type { Scan, ScanRange, ScanOptions, RangeRead, RangeReadOptions } from './scan.ts'
