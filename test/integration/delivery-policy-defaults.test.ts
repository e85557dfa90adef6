/**
 * A subscription's delivery policy holds only what it set; the platform's defaults (DELIVERY_* and
 * WEBHOOK_TIMEOUT_MS) apply to the rest at delivery time, so a changed default reaches subscriptions
 * created before. Subscriptions stored with a frozen copy of the old defaults are migrated. A
 * subscription's rateLimitPerSecond is enforced by the worker (real Kafka, FerretDB, HTTP receiver).
 */
import { expect } from 'chai'
import { subscriptionView } from '../../api/management/http.ts'
import { DEFAULT_DELIVERY_POLICY, type SubscriptionDoc } from '../../control-plane/index.ts'
import type { SinkWorker } from '../../connectors/sink/worker.ts'
import { waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { levels } from '../helpers/sink-assertions.ts'

describe('delivery policy: the platform defaults reach every subscription', function () {
  this.timeout(90_000)
  let h: SinkHarness
  let worker: SinkWorker | undefined
  const receivers: Receiver[] = []
  before(async () => {
    h = await startSinkHarness()
  })
  afterEach(async () => {
    await worker?.stop()
    worker = undefined
    while (receivers.length) await receivers.pop()!.close()
  })
  after(async () => h?.close())

  it('stores only what a subscription set, shows what applies, and follows a changed default', async () => {
    const created = await h.cp.createSubscription(ADMIN, {
      partnerId: h.partnerId,
      name: 'defaults',
      eventTypes: ['inventory.level.changed'],
      sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
      deliveryPolicy: { batchSize: 1, rateLimitPerSecond: 7 },
    })
    const stored = (await h.db.collection<SubscriptionDoc>('subscriptions').findOne({ _id: created.subscription._id }))!
    expect(stored.deliveryPolicy).to.deep.equal({ batchSize: 1, rateLimitPerSecond: 7 })
    const view = subscriptionView(stored, h.cp)
    expect(view.deliveryPolicy).to.deep.equal({ batchSize: 1, rateLimitPerSecond: 7 })
    expect(view.effectiveDeliveryPolicy).to.deep.include({
      ...h.cp.deliveryDefaults,
      batchSize: 1,
      rateLimitPerSecond: 7,
    })
    // another process configured with other defaults (DELIVERY_RETRY_SCHEDULE=1s,2s, WEBHOOK_TIMEOUT_MS=3000): they
    // apply
    const other = await h.controlPlane(h.db)
    ;(other as { deliveryDefaults: unknown }).deliveryDefaults = {
      ...other.deliveryDefaults,
      retrySchedule: [1, 2],
      timeoutMs: 3000,
    }
    expect(other.effectiveDeliveryPolicy(stored)).to.deep.include({
      retrySchedule: [1, 2],
      timeoutMs: 3000,
      rateLimitPerSecond: 7,
    })
    // a change keeps the subscription's own values and adds the new one
    const updated = await h.cp.updateSubscription(ADMIN, created.subscription._id, {
      deliveryPolicy: { timeoutMs: 4000 },
    })
    expect(updated.subscription.deliveryPolicy).to.deep.equal({ batchSize: 1, rateLimitPerSecond: 7, timeoutMs: 4000 })
  })

  it(
    'migrates a subscription stored with a frozen copy of the old defaults: ' + 'values equal to them become inherited',
    async () => {
      const created = await h.cp.createSubscription(ADMIN, {
        partnerId: h.partnerId,
        name: 'legacy',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
      })
      const id = created.subscription._id
      // as stored before: every default copied in, merged with what the caller set (timeoutMs 2500)
      await h.db.collection<SubscriptionDoc>('subscriptions').updateOne(
        { _id: id },
        {
          $set: { deliveryPolicy: { ...DEFAULT_DELIVERY_POLICY, timeoutMs: 2500 } },
          $unset: { deliveryPolicyOwn: '' },
        },
      )
      await h.cp.init()
      const migrated = (await h.db.collection<SubscriptionDoc>('subscriptions').findOne({ _id: id }))!
      expect([migrated.deliveryPolicy, migrated.deliveryPolicyOwn]).to.deep.equal([{ timeoutMs: 2500 }, true])
      await h.cp.init() // idempotent
      expect(
        (await h.db.collection<SubscriptionDoc>('subscriptions').findOne({ _id: id }))!.deliveryPolicy,
      ).to.deep.equal({ timeoutMs: 2500 })
    },
  )

  it(
    "a subscription without its own timeout gets the worker's WEBHOOK_TIMEOUT_MS, " +
      'and its rateLimitPerSecond is enforced',
    async () => {
      const hanging = await startReceiver(() => undefined) // never answers
      const fast = await startReceiver()
      receivers.push(hanging, fast)
      const slow = await h.subscribe({ name: 'no-timeout', url: hanging.url, deliveryPolicy: { retrySchedule: [60] } })
      const limited = await h.subscribe({
        name: 'rate-limited',
        url: fast.url,
        deliveryPolicy: { rateLimitPerSecond: 10 },
      })
      worker = await h.worker({}, { webhookTimeoutMs: 1000 })
      await waitFor(async () => (await h.cp.getConnector(ADMIN, limited.id)).status?.state === 'running', {
        what: 'running',
      })
      const t0 = Date.now()
      await h.produce(levels(30, 30))
      // the hanging endpoint's attempt fails after the worker's 1 s default, not the 10 s of a frozen copy
      await waitFor(
        async () =>
          (await h.cp.deliveries.search({ subscriptionId: slow.id }, { limit: 5 })).items.find(
            (d) => d.attempts.length > 0,
          ),
        { timeoutMs: 20_000, what: 'a failed attempt of the hanging endpoint' },
      )
      const attempt = (await h.cp.deliveries.search({ subscriptionId: slow.id }, { limit: 5 })).items.find(
        (d) => d.attempts.length > 0,
      )!.attempts![0]!
      expect(attempt.durationMs, 'timed out after the default WEBHOOK_TIMEOUT_MS').to.be.below(5000)
      // 30 events at 10/s: a burst of 10, then one every 100 ms; a slow machine is slower, never faster
      await waitFor(() => fast.received.length >= 30, {
        timeoutMs: 30_000,
        what: 'every event at the rate-limited endpoint',
      })
      // counted from before the events existed: arrivals come after their starts, so a slow machine can only lower this
      // count
      const firstHalfSecond = fast.received.filter((r) => r.at - t0 < 500).length
      expect(firstHalfSecond, 'arrived within 0.5 s of producing: the burst and about 5 more').to.be.at.most(16)
      expect(fast.received.at(-1)!.at - t0, 'the 30th after about 2 s').to.be.at.least(1800)
    },
  )
})
