/**
 * The clients a worker's sinks share (consumers/plugin.ts SinkRuntime), opened from the
 * configuration and closed together: the HTTP client of webhook and REST sinks (one keep-alive pool
 * per origin), their OAuth2 token cache, the sandbox processes of JSONata mappings, the MongoDB
 * clients of projections, the producer of partner topics.
 */
import { createKafka } from '../common/kafka/index.ts'
import type { Logger } from '../common/logger.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import type { AppConfig } from '../config/index.ts'
import { deliveryDefaults, mongoSinkClientSettings, webhookClientSettings } from '../connectors/sink/settings.ts'
import type { AvroSerde } from '../schemas/serde/serde.ts'
import type { TopicSpec } from '../schemas/topics.ts'
import { SharedPartnerTopicWriter } from './kafka-topic/factory.ts'
import { MongoClientPool } from './mongodb/client-pool.ts'
import type { SinkRuntime } from './plugin.ts'
import { MappingSandbox } from './rest/mapping-sandbox.ts'
import { OAuth2TokenCache } from './rest/oauth2.ts'
import type { SinkSecrets } from './secrets.ts'
import { WebhookClient } from './webhook/client.ts'

export interface OpenedSinkRuntime {
  runtime: SinkRuntime
  close(): Promise<void>
}

export function openSinkRuntime(
  config: AppConfig,
  o: { guard: UrlGuard; secrets: SinkSecrets; serde: AvroSerde; topics: readonly TopicSpec[]; logger: Logger },
): OpenedSinkRuntime {
  const { guard, logger } = o
  const http = new WebhookClient({ guard, ...webhookClientSettings(config) })
  const mongo = new MongoClientPool({
    guard,
    logger,
    settings: mongoSinkClientSettings(config),
    appName: `${config.kafka.clientId}-sinks`,
  })
  const partnerTopics = new SharedPartnerTopicWriter(
    createKafka(config, logger, `${config.kafka.clientId}-partner-topics`),
    o.serde,
    logger,
  )
  // JSONata body mappings of REST sinks run in sandbox processes, off the worker's event loop
  const mappings = new MappingSandbox(config.delivery.mapping, logger)
  const runtime: SinkRuntime = {
    secrets: o.secrets,
    topics: o.topics,
    http,
    tokens: new OAuth2TokenCache(http),
    mappings,
    mongo,
    partnerTopics,
    webhookTimeoutMs: deliveryDefaults(config).webhookTimeoutMs,
  }
  return {
    runtime,
    async close() {
      await http.close()
      await mongo.close()
      await partnerTopics.close()
      await mappings.close()
    },
  }
}
