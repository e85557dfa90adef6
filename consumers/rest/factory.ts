/**
 * The REST sink as the sink worker builds it for a subscription: the sink's settings with their
 * secrets opened from the key ring, the subscription's timeout within the HTTP bounds, batching from
 * the delivery policy (`batchSize` events, waiting `sink.batchWaitMs` at most).
 */
import { ConfigError } from '../../common/errors.ts'
import type { SinkConnector, SinkContext } from '../../connectors/sink/types.ts'
import type { RestSink as RestSinkDoc, SubscriptionDoc } from '../../control-plane/types.ts'
import { MAX_HTTP_TIMEOUT_MS, MIN_HTTP_TIMEOUT_MS, type HttpSinkClient } from '../http/client.ts'
import { openSecrets, type SinkSecrets } from '../secrets.ts'
import {
  DEFAULT_BATCH_WAIT_MS,
  MAX_BATCH_EVENTS,
  REST_SECRET_PATHS,
  type RestAuth,
  type RestSinkConfig,
} from './config.ts'
import type { MappingSandbox } from './mapping-sandbox.ts'
import type { OAuth2TokenCache } from './oauth2.ts'
import { RestSink } from './sink.ts'

export function restSinkConfig(sub: SubscriptionDoc, secrets: SinkSecrets, defaultTimeoutMs: number): RestSinkConfig {
  if (sub.sink.type !== 'rest')
    throw new ConfigError(`subscription ${sub._id} has a ${sub.sink.type} sink, not a REST sink`, {
      subscriptionId: sub._id,
    })
  const sink = openSecrets<RestSinkDoc>(sub.sink, REST_SECRET_PATHS, secrets.box)
  const timeout = sub.deliveryPolicy?.timeoutMs ?? defaultTimeoutMs
  const batchSize = Math.min(MAX_BATCH_EVENTS, Math.max(1, sub.deliveryPolicy?.batchSize ?? 1))
  return {
    url: sink.url,
    method: sink.method,
    ...(sink.auth !== undefined ? { auth: sink.auth as unknown as RestAuth } : {}),
    ...(sink.bodyMapping !== undefined ? { bodyMapping: sink.bodyMapping } : {}),
    ...(sink.headers !== undefined ? { headers: sink.headers } : {}),
    timeoutMs: Math.min(MAX_HTTP_TIMEOUT_MS, Math.max(MIN_HTTP_TIMEOUT_MS, timeout)),
    ...(batchSize > 1 ? { batch: { maxEvents: batchSize, maxWaitMs: sink.batchWaitMs ?? DEFAULT_BATCH_WAIT_MS } } : {}),
  }
}

/** A SinkFactory (connectors/sink/types.ts) for REST subscriptions; other sink types are refused with a ConfigError. */
export function restSinkFactory(
  client: HttpSinkClient,
  tokens: OAuth2TokenCache,
  mappings: MappingSandbox,
  secrets: SinkSecrets,
  defaultTimeoutMs: number,
) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new RestSink(client, tokens, mappings)
    await sink.start(restSinkConfig(sub, secrets, defaultTimeoutMs), ctx)
    return sink as SinkConnector<unknown>
  }
}
