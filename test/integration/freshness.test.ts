/**
 * Freshness that tells the truth (issue 24): distributary_subscription_freshness_seconds and the
 * connector status's freshnessSeconds are the age of the oldest record not yet delivered to the
 * subscription: 0 on an idle topic and once caught up, growing with the wall clock for a paused partner
 * only, back to 0 after it caught up; a subscription's freshnessSloSeconds shows its breach and its
 * recovery in the status, and as events (subscriptions.health) to the partner that owns it and to the
 * publisher, never to another partner. Real Kafka, real store, real webhook receivers.
 */
import { expect } from 'chai'
import { sleep } from '../../common/timers.ts'
import { waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { levels, verified } from '../helpers/sink-assertions.ts'

describe('freshness: the age of the oldest undelivered record', function () {
  this.timeout(90_000)
  let h: SinkHarness
  const receivers: Receiver[] = []

  beforeEach(async () => {
    h = await startSinkHarness({ healthTopic: true })
  })
  afterEach(async () => {
    await h.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  const gauge = async (id: string): Promise<number | undefined> => {
    const text = (await h.metrics.render()).body
    const m = new RegExp(`^distributary_subscription_freshness_seconds\\{subscription="${id}"\\} (\\S+)$`, 'm').exec(
      text,
    )
    return m ? Number(m[1]) : undefined
  }
  const status = async (id: string) => (await h.cp.getConnector(ADMIN, id)).status

  it('reads 0 on an idle topic, grows for a paused partner only, and is 0 again once it caught up', async () => {
    const a = await startReceiver()
    const b = await startReceiver()
    receivers.push(a, b)
    const sa = await h.subscribe({ name: 'paused-partner', url: a.url, deliveryPolicy: { freshnessSloSeconds: 2 } })
    const sb = await h.subscribe({ name: 'live-partner', url: b.url })
    await h.worker()
    await waitFor(
      async () => (await status(sa.id))?.state === 'running' && (await status(sb.id))?.state === 'running',
      {
        what: 'both running',
      },
    )

    // an idle topic: nothing waits, both read 0
    await waitFor(async () => (await gauge(sa.id)) === 0 && (await gauge(sb.id)) === 0, { what: 'idle: 0 for both' })
    expect((await status(sa.id))?.freshnessSeconds).to.equal(0)

    // the partner of `a` is paused; events keep coming
    await h.cp.setDesiredState(ADMIN, sa.id, 'paused')
    await waitFor(async () => (await status(sa.id))?.state === 'paused', { what: 'paused' })
    const producedAt = Date.now()
    await h.produce(levels(30, 3))
    await waitFor(() => new Set(verified(sb.secret, b).map((g) => g.id)).size === 30, { what: 'b got everything' })
    expect(a.received.length, 'nothing reached the paused partner').to.equal(0)

    // a's figure grows with the wall clock: about the time since the events came, never more
    await sleep(2500)
    const first = (await gauge(sa.id))!
    const firstWall = (Date.now() - producedAt) / 1000
    expect(first, 'paused partner, after 2.5 s')
      .to.be.greaterThan(1)
      .and.at.most(firstWall + 0.5)
    await sleep(3000)
    const second = (await gauge(sa.id))!
    expect(second - first, 'grown with the wall clock (3 s later, status passes every second)').to.be.within(1.5, 4.5)
    // only that partner's: b delivered everything and reads 0
    await waitFor(async () => (await gauge(sb.id)) === 0, { what: 'b back to 0' })
    await waitFor(async () => ((await status(sa.id))?.freshnessSeconds ?? 0) > 1, { what: "a's status shows its age" })
    // its objective (2 s) is breached, since about when the oldest waiting record turned 2 s old; b has none
    const breached = (await status(sa.id))?.freshnessBreachedSince
    expect(breached, 'breach in the status').to.be.instanceOf(Date)
    expect(breached!.getTime()).to.be.within(producedAt + 1000, producedAt + 4000)
    expect((await status(sb.id))?.freshnessBreachedSince ?? null).to.equal(null)

    // resumed: a catches up and reads 0 again
    await h.cp.setDesiredState(ADMIN, sa.id, 'running')
    await waitFor(() => new Set(verified(sa.secret, a).map((g) => g.id)).size === 30, { what: 'a caught up' })
    await waitFor(async () => (await gauge(sa.id)) === 0, { what: 'a back to 0' })
    await waitFor(async () => (await status(sa.id))?.freshnessSeconds === 0, { what: "a's status back to 0" })
    expect((await status(sa.id))?.freshnessBreachedSince, 'recovered').to.equal(null)
  })

  it("a breach and its recovery are events to the subscription's partner and its publisher, no one else", async () => {
    const a = await startReceiver()
    const toPartner = await startReceiver()
    const toPublisher = await startReceiver()
    const toOther = await startReceiver()
    receivers.push(a, toPartner, toPublisher, toOther)
    const health = ['subscription.freshness.breached', 'subscription.freshness.recovered']
    const sa = await h.subscribe({ name: 'slow-partner', url: a.url, deliveryPolicy: { freshnessSloSeconds: 2 } })
    const partnerHealth = await h.subscribe({ name: 'health', url: toPartner.url, eventTypes: health })
    const own = await h.cp.createSubscription(ADMIN, {
      partnerId: h.publisherId,
      name: 'partner health',
      eventTypes: health,
      sink: { type: 'webhook', url: toPublisher.url },
    })
    // another partner subscribes without a grant (none is needed for its own subscriptions' health)
    const other = await h.cp.createOrganization(ADMIN, { kind: 'partner', name: 'O', slug: `other-${Date.now()}` })
    const otherHealth = await h.cp.createSubscription(ADMIN, {
      partnerId: other._id,
      name: 'health',
      eventTypes: health,
      sink: { type: 'webhook', url: toOther.url },
    })
    const ids = [sa.id, partnerHealth.id, own.subscription._id, otherHealth.subscription._id]
    await h.worker()
    for (const id of ids) await waitFor(async () => (await status(id))?.state === 'running', { what: `${id} running` })
    await h.cp.setDesiredState(ADMIN, sa.id, 'paused')
    await waitFor(async () => (await status(sa.id))?.state === 'paused', { what: 'paused' })
    await h.produce(levels(10, 2))
    type Health = { type: string; data: Record<string, unknown> }
    const events = (r: Receiver) => r.received.map((x) => JSON.parse(x.body) as Health)
    await waitFor(() => events(toPartner).length >= 1 && events(toPublisher).length >= 1, {
      timeoutMs: 30_000,
      what: 'the breach at the partner and the publisher',
    })
    const breach = events(toPartner)[0]!
    expect(breach.type).to.equal('subscription.freshness.breached')
    expect(breach.data).to.include({
      status: 'BREACHED',
      subscriptionId: sa.id,
      subscriptionName: 'slow-partner',
      partnerId: h.partnerId,
      manufacturerId: h.publisherId,
      objectiveSeconds: 2,
    })
    expect(breach.data.freshnessSeconds as number).to.be.above(2)
    expect(events(toPublisher)[0]).to.deep.equal(breach)
    const since = (await status(sa.id))!.freshnessBreachedSince!
    expect(breach.data.breachedSince, 'as in the status (ms since the epoch, as webhooks carry timestamps)').to.equal(
      since.getTime(),
    )

    await h.cp.setDesiredState(ADMIN, sa.id, 'running')
    await waitFor(() => events(toPartner).length >= 2 && events(toPublisher).length >= 2, {
      timeoutMs: 30_000,
      what: 'the recovery at the partner and the publisher',
    })
    const recovery = events(toPartner)[1]!
    expect(recovery.type).to.equal('subscription.freshness.recovered')
    expect(recovery.data).to.include({
      status: 'RECOVERED',
      subscriptionId: sa.id,
      breachedSince: breach.data.breachedSince,
    })
    expect(recovery.data.breachedForSeconds as number).to.be.above(0)
    expect(events(toPublisher)[1]).to.deep.equal(recovery)
    // the status is written after the event is produced (its next report): under load, a moment later
    await waitFor(async () => ((await status(sa.id))!.freshnessBreachedSince ?? null) === null, {
      what: 'the status without the breach',
    })
    // once each, and none for the other partner
    await sleep(1500)
    expect(events(toPartner).map((e) => e.type)).to.deep.equal(health)
    expect(toOther.received, "another partner gets no one else's health").to.have.length(0)
  })
})
