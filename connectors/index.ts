export { DeliveryQueue, Fifo, deliveryDefaults, webhookClientSettings } from './sink/index.ts'
export type {
  SinkConnector,
  SinkContext,
  SinkRecord,
  AttemptReport,
  PutOptions,
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
  DeliveryDefaults,
} from './sink/index.ts'
export {
  withRetry,
  retryDelay,
  maxAttempts,
  sleep,
  parseDuration,
  parseSchedule,
  parseRetryAfter,
  STANDARD_WEBHOOKS_SCHEDULE_MS,
  DEFAULT_DELIVERY_POLICY,
  DEFAULT_SHORT_POLICY,
} from './retry.ts'
export type { RetryPolicy, ExponentialPolicy, SchedulePolicy, RetryOptions } from './retry.ts'
