/**
 * Builds the control plane from the configuration: key ring, SSRF allowlist, bootstrap admin key.
 */
import type { Db } from 'mongodb'
import type { Logger } from '../common/logger.ts'
import { createSecretBox, parseKeyRing } from '../common/secret-box.ts'
import { createUrlGuard } from '../common/url-guard.ts'
import { partnerKafkaAccess, type AppConfig } from '../config/index.ts'
import { parseSchedule } from '../connectors/retry.ts'
import { ControlPlane, type ControlPlaneOptions } from './service.ts'

/** `encryptionKeys` overrides config.secrets.encryptionKeys (the platform passes a local-stack key file's ring). */
export function controlPlaneFromConfig(
  config: AppConfig,
  db: Db,
  logger: Logger,
  encryptionKeys = config.secrets.encryptionKeys,
  extra: Pick<ControlPlaneOptions, 'partnerProfileTopic'> = {},
): ControlPlane {
  return new ControlPlane({
    db,
    box: createSecretBox(parseKeyRing(encryptionKeys, config.secrets.currentKeyId)),
    urlGuard: createUrlGuard({ allowlist: config.urlGuard.allowlist }),
    logger: logger.child({ component: 'control-plane' }),
    bootstrapKey: config.management.adminApiKey,
    apiKeyCacheMs: config.management.apiKeyCacheMs,
    apiKeyVerification: {
      attempts: config.management.keyAttempts,
      verifyConcurrency: config.management.keyVerifyConcurrency,
      verifyQueue: config.management.keyVerifyQueue,
    },
    idempotencyTtlSeconds: config.management.idempotencyTtlSeconds,
    deliveryDefaults: {
      retrySchedule: parseSchedule(config.delivery.retrySchedule, 'delivery.retrySchedule').map((ms) => ms / 1000),
      timeoutMs: config.delivery.webhook.timeoutMs,
      concurrency: config.delivery.concurrency,
      disableAfterFailingSeconds: Math.round(config.delivery.disableAfterMs / 1000),
    },
    deals: {
      protectionDays: config.deals.protectionDays,
      reminderDays: config.deals.reminderDays,
      leadAcceptHours: config.deals.leadAcceptHours,
      sandbox: {
        processes: 1,
        timeLimitMs: config.delivery.mapping.timeLimitMs,
        memoryLimitMb: config.delivery.mapping.memoryLimitMb,
        maxOutputBytes: config.delivery.mapping.maxOutputBytes,
      },
    },
    ...(partnerKafkaAccess(config).bootstrapServers.length > 0
      ? { partnerKafka: { topicPrefix: config.kafka.partners.topicPrefix } }
      : {}),
    ...extra,
  })
}
