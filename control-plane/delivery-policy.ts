/**
 * A subscription's delivery policy: what it set itself, over the platform's defaults (config
 * delivery.*), resolved when it is read, never copied into the subscription.
 */
import type { Logger } from '../common/logger.ts'
import type { Collections } from './store.ts'
import type { DeliveryPolicy, SubscriptionDoc } from './types.ts'

/**
 * The delivery policy's defaults when the configuration names none. They were once copied into every
 * subscription; documents from then are recognized (all five fields, no deliveryPolicyOwn) and the
 * values equal to these are taken as inherited (migrateDeliveryPolicies).
 */
export const DEFAULT_DELIVERY_POLICY: DeliveryPolicy = {
  retrySchedule: [5, 300, 1800, 7200, 18000, 36000, 36000],
  timeoutMs: 10_000,
  rateLimitPerSecond: 0,
  batchSize: 1,
  disableAfterFailingSeconds: 5 * 24 * 3600,
}

const LEGACY_POLICY_FIELDS = [
  'retrySchedule',
  'timeoutMs',
  'rateLimitPerSecond',
  'batchSize',
  'disableAfterFailingSeconds',
] as const

/**
 * The delivery policy a subscription set itself. A document from before deliveryPolicyOwn holds all
 * five fields (a copy of DEFAULT_DELIVERY_POLICY merged with the input): the values equal to the
 * defaults are taken as inherited.
 */
export function ownDeliveryPolicy(
  sub: Pick<SubscriptionDoc, 'deliveryPolicy' | 'deliveryPolicyOwn'>,
): Partial<DeliveryPolicy> {
  const policy = sub.deliveryPolicy ?? {}
  if (sub.deliveryPolicyOwn || !LEGACY_POLICY_FIELDS.every((f) => policy[f] !== undefined)) return policy
  const own: Partial<DeliveryPolicy> = { ...policy }
  for (const f of LEGACY_POLICY_FIELDS)
    if (JSON.stringify(policy[f]) === JSON.stringify(DEFAULT_DELIVERY_POLICY[f])) delete own[f]
  return own
}

/**
 * Subscriptions stored with a frozen copy of the default delivery policy: the values equal to the
 * old defaults become inherited, the rest stay the subscription's own. Idempotent (marks each).
 */
export async function migrateDeliveryPolicies(cols: Collections, logger: Logger): Promise<void> {
  const legacy = await cols.subscriptions
    .find({ deliveryPolicyOwn: { $exists: false } }, { projection: { _id: 1, deliveryPolicy: 1, version: 1 } })
    .toArray()
  for (const s of legacy) {
    await cols.subscriptions.updateOne(
      { _id: s._id, deliveryPolicyOwn: { $exists: false } },
      { $set: { deliveryPolicy: ownDeliveryPolicy(s as SubscriptionDoc), deliveryPolicyOwn: true } },
    )
  }
  if (legacy.length > 0)
    logger.info('delivery policies migrated: default values are inherited now', { subscriptions: legacy.length })
}
