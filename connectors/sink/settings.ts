/**
 * The delivery defaults of the configuration (config/schema.ts `delivery.*`) in the shapes the
 * delivery queue and the webhook client take; a subscription's own settings override them.
 */
import type { AppConfig } from '../../config/index.ts'
import { parseSchedule, type SchedulePolicy } from '../retry.ts'

export interface DeliveryDefaults {
  policy: SchedulePolicy
  concurrency: number
  parkAfterFailures: number
  disableAfterMs: number
  webhookTimeoutMs: number
}

export function deliveryDefaults(config: AppConfig): DeliveryDefaults {
  const d = config.delivery
  return {
    policy: {
      kind: 'schedule',
      delaysMs: parseSchedule(d.retrySchedule, 'delivery.retrySchedule'),
      jitter: d.retryJitter,
      maxRetryAfterMs: d.maxRetryAfterMs,
    },
    concurrency: Math.max(1, d.concurrency),
    parkAfterFailures: Math.max(1, d.parkAfterFailures),
    disableAfterMs: d.disableAfterMs,
    webhookTimeoutMs: d.webhook.timeoutMs,
  }
}

/** Options of the process-wide WebhookClient, minus the guard (common/url-guard.ts, wired by the worker). */
export function webhookClientSettings(config: AppConfig) {
  const w = config.delivery.webhook
  return {
    connectionsPerOrigin: Math.max(1, w.connectionsPerOrigin),
    keepAliveTimeoutMs: w.keepAliveTimeoutMs,
    connectTimeoutMs: w.connectTimeoutMs,
  }
}

/** Settings of the MongoDB sinks' shared clients (consumers/mongodb MongoClientPool), minus the guard. */
export function mongoSinkClientSettings(config: AppConfig) {
  const m = config.delivery.mongodb
  return {
    serverSelectionTimeoutMs: m.serverSelectionTimeoutMs,
    connectTimeoutMs: m.connectTimeoutMs,
    socketTimeoutMs: m.socketTimeoutMs,
    maxPoolSize: Math.max(1, m.maxPoolSize),
  }
}
