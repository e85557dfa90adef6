/**
 * The Kafka client built from the configuration, so that every part of the platform connects the
 * same way to the local stack or to a managed cluster (TLS, SASL, credentials), and logs through
 * the platform's logger.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs'
import { kafkaBrokers, type AppConfig } from '../../config/index.ts'
import type { Logger } from '../logger.ts'
import { installKafkaDecoderPatch } from './decoder.ts'
import { installKafkaEncoderPatch } from './encoder.ts'
import { installKafkaTimeoutPatch } from './timeouts.ts'

// Every process that builds a Kafka client from here encodes produce requests from pooled buffers
// (encoder.ts), decodes fetched records' headers without copying them per header (decoder.ts) and arms no
// timer with a negative delay (timeouts.ts).
installKafkaEncoderPatch()
installKafkaDecoderPatch()
installKafkaTimeoutPatch()

export function kafkaConfig(config: AppConfig, clientId = config.kafka.clientId): KafkaConfig {
  const k = config.kafka
  const out: KafkaConfig = {
    clientId,
    brokers: kafkaBrokers(config),
    connectionTimeout: k.connectionTimeoutMs,
    requestTimeout: k.requestTimeoutMs,
    logLevel: logLevel.NOTHING,
  }
  if (k.ssl.enabled) {
    out.ssl = {
      rejectUnauthorized: k.ssl.rejectUnauthorized,
      ...(k.ssl.caFile !== '' ? { ca: [fs.readFileSync(k.ssl.caFile, 'utf8')] } : {}),
    }
  }
  if (k.sasl.mechanism !== 'none') {
    out.sasl = { mechanism: k.sasl.mechanism, username: k.sasl.username, password: k.sasl.password } as SASLOptions
  }
  return out
}

/** The messages of the broker error codes kafkajs retries by itself (not leader, coordinator loading, ...). */
const RETRIABLE_BROKER_ERRORS = new Set(
  (
    createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
      errorCodes: Array<{ message: string; retriable: boolean }>
    }
  ).errorCodes
    .filter((e) => e.retriable)
    .map((e) => e.message),
)

/**
 * kafkajs log entries routed into our JSON logger (warn and error only), with two kinds demoted to
 * debug, because they are not faults of the platform and a first start showed them as errors:
 *  - a broker response carrying a retriable error code (kafkajs' Connection logs every error
 *    response at error level before its retrier sends the request again: "The group coordinator is
 *    not available" and "not the leader" while a fresh broker elects its leaders); a request that
 *    still fails after the retries reaches our code as an error and is logged there;
 *  - "Limiting retries for the idempotent producer may invalidate EoS guarantees": the producers
 *    bound their retries on purpose (an HTTP publisher gets a 503 instead of waiting forever) and
 *    the platform promises at least once, which a failed send followed by a new one keeps.
 */
export function kafkaLogCreator(logger: Logger) {
  return () =>
    ({
      namespace,
      level,
      log,
    }: {
      namespace: string
      level: number
      log: { message: string } & Record<string, unknown>
    }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = log
      const ctx = { component: 'kafkajs', namespace, ...rest }
      const routine =
        (namespace === 'Connection' &&
          message.startsWith('Response ') &&
          typeof rest.error === 'string' &&
          RETRIABLE_BROKER_ERRORS.has(rest.error)) ||
        message.startsWith('Limiting retries for the idempotent producer')
      if (routine) logger.debug(message, ctx)
      else if (level === logLevel.ERROR) logger.error(message, ctx)
      else if (level === logLevel.WARN) logger.warn(message, ctx)
    }
}

export function createKafka(
  config: AppConfig,
  logger?: Logger,
  clientId?: string,
  overrides: Partial<KafkaConfig> = {},
): Kafka {
  const cfg = { ...kafkaConfig(config, clientId), ...overrides }
  if (logger) {
    cfg.logLevel = logLevel.WARN
    cfg.logCreator = kafkaLogCreator(logger)
  }
  return new Kafka(cfg)
}
