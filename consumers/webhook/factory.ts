/**
 * The webhook sink as the sink worker builds it for a subscription: the URL from the subscription,
 * the secrets in force opened from the key ring (with their rotation expiry, so both are signed with
 * during the overlap), the subscription's timeout within the sink's bounds.
 */
import { ConfigError } from '../../common/errors.ts'
import type { SinkConnector, SinkContext } from '../../connectors/sink/types.ts'
import type { SubscriptionDoc } from '../../control-plane/types.ts'
import type { SinkSecrets } from '../secrets.ts'
import type { WebhookClient } from './client.ts'
import { MAX_WEBHOOK_TIMEOUT_MS, MIN_WEBHOOK_TIMEOUT_MS, WebhookSink, type WebhookSinkConfig } from './sink.ts'

export function webhookSinkConfig(
  sub: SubscriptionDoc,
  keys: SinkSecrets,
  defaultTimeoutMs: number,
  now = Date.now(),
): WebhookSinkConfig {
  if (sub.sink.type !== 'webhook')
    throw new ConfigError(`subscription ${sub._id} has a ${sub.sink.type} sink, not a webhook`, {
      subscriptionId: sub._id,
    })
  const live = sub.webhookSecrets.filter((s) => s.expiresAt === null || s.expiresAt.getTime() > now)
  const secrets = (live.length > 0 ? live : sub.webhookSecrets.slice(-1)).map((s) => ({
    secret: keys.box.open(s.sealed),
    ...(s.expiresAt !== null ? { expiresAt: s.expiresAt.getTime() } : {}),
  }))
  const timeout = sub.deliveryPolicy?.timeoutMs ?? defaultTimeoutMs
  return {
    url: sub.sink.url,
    secrets,
    timeoutMs: Math.min(MAX_WEBHOOK_TIMEOUT_MS, Math.max(MIN_WEBHOOK_TIMEOUT_MS, timeout)),
  }
}

/**
 * A SinkFactory (connectors/sink/types.ts) for webhook subscriptions; other sink types are refused with a ConfigError.
 */
export function webhookSinkFactory(client: WebhookClient, keys: SinkSecrets, defaultTimeoutMs: number) {
  return async (sub: SubscriptionDoc, ctx: SinkContext): Promise<SinkConnector<unknown>> => {
    const sink = new WebhookSink(client)
    await sink.start(webhookSinkConfig(sub, keys, defaultTimeoutMs), ctx)
    return sink as SinkConnector<unknown>
  }
}
