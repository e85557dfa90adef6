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
export { deliveryDefaults, webhookClientSettings } from './settings.ts'
export type { DeliveryDefaults } from './settings.ts'
