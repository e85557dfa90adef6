/**
 * Test events (POST /v1/subscriptions/{id}/test): the example of an event type goes to the
 * subscription's sink through the worker holding it (real Kafka, FerretDB, HTTP receiver, MongoDB
 * sink), while the subscription is paused and with no grant covering the example's data; its
 * attempts are in the delivery log; a failed one is dead without a dead letter and is not retried; a
 * MongoDB sink is left without the test document.
 */
import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import { createUrlGuard } from '../../common/url-guard.ts'
import { mongoUri } from '../../config/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import { MongoClientPool, mongoSinkFactory } from '../../consumers/mongodb/index.ts'
import { WebhookClient, webhookSinkFactory } from '../../consumers/webhook/index.ts'
import type { SinkWorker } from '../../connectors/sink/worker.ts'
import { ConflictError, NotFoundError, RequestInvalidError } from '../../control-plane/errors.ts'
import type { Principal, RetryRequestDoc } from '../../control-plane/index.ts'
import { dropDatabaseLater, testConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { loopbackOnlyGuard, startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'

describe('test events: an example to a subscription on request', function () {
  this.timeout(90_000)
  let h: SinkHarness
  let worker: SinkWorker | undefined
  let pool: MongoClientPool
  const receivers: Receiver[] = []
  before(async () => {
    h = await startSinkHarness()
    pool = new MongoClientPool({
      guard: createUrlGuard({ allowlist: '127.0.0.1' }),
      logger: h.logger,
      settings: { serverSelectionTimeoutMs: 3000 },
    })
  })
  afterEach(async () => {
    await worker?.stop()
    worker = undefined
    while (receivers.length) await receivers.pop()!.close()
  })
  after(async () => {
    await h?.close()
    await pool?.close()
  })

  const partner = (): Principal => ({ keyId: 'test-partner', scope: 'partner', organizationId: h.partnerId })
  const done = (subscriptionId: string, id: string) =>
    waitFor(
      async () => {
        const r = await h.cp.getRetryRequest(ADMIN, subscriptionId, id)
        return r.status === 'done' ? r : undefined
      },
      { timeoutMs: 30_000, what: 'the test request done' },
    ) as Promise<RetryRequestDoc>
  const startWorker = () =>
    h.worker(
      {},
      {},
      sinkFactoryByType({
        webhook: webhookSinkFactory(new WebhookClient({ guard: loopbackOnlyGuard }), h.cp, 2000),
        mongodb: mongoSinkFactory(pool, h.cp, [h.topic]),
      }),
    )

  it('sends a signed example with "test": true to a paused webhook subscription, logged as delivered', async () => {
    const receiver = await startReceiver()
    receivers.push(receiver)
    const sub = await h.subscribe({ name: uniqueName('t'), url: receiver.url })
    await h.cp.setDesiredState(ADMIN, sub.id, 'paused')
    worker = await startWorker()
    const req = await h.cp.requestTestEvent(partner(), sub.id, {})
    expect(req).to.include({ kind: 'test', eventType: 'inventory.level.changed', status: 'pending' })
    const finished = await done(sub.id, req._id)
    expect(finished.outcome).to.equal('delivered')
    expect(receiver.received).to.have.length(1)
    const got = receiver.received[0]!
    // the official Standard Webhooks verifier accepts it
    const body = new Webhook(sub.secret).verify(got.body, {
      'webhook-id': String(got.headers['webhook-id']),
      'webhook-timestamp': String(got.headers['webhook-timestamp']),
      'webhook-signature': String(got.headers['webhook-signature']),
    }) as { type: string; test: boolean; data: { sku: string; onHand: number } }
    expect(body).to.deep.include({ type: 'inventory.level.changed', test: true })
    expect(body.data).to.include({ sku: 'DRL-2000', onHand: 120 })
    expect(got.headers['webhook-id']).to.equal(req.eventId)
    const logged = await waitFor(() => h.cp.deliveries.get(sub.id, req.eventId!), { what: 'the logged test' })
    expect(logged).to.include({ status: 'delivered', test: true, eventType: 'inventory.level.changed' })
    expect(logged.attempts[0]!.statusCode).to.equal(204)
    // still paused: nothing else was delivered
    expect((await h.cp.getConnector(ADMIN, sub.id)).desiredState).to.equal('paused')
  })

  it('a failing endpoint: three attempts, dead without a dead letter, not retried', async () => {
    const receiver = await startReceiver((_r, res) => res.writeHead(503).end('down for maintenance'))
    receivers.push(receiver)
    const sub = await h.subscribe({ name: uniqueName('t'), url: receiver.url })
    worker = await startWorker()
    const req = await h.cp.requestTestEvent(ADMIN, sub.id, { eventType: 'inventory.level.changed' })
    const finished = await done(sub.id, req._id)
    expect(finished.outcome).to.match(/^test event not delivered: /)
    expect(receiver.received).to.have.length(3)
    const logged = await waitFor(
      async () => {
        const d = await h.cp.deliveries.get(sub.id, req.eventId!)
        return d?.status === 'dead' && d.attempts.length === 3 ? d : undefined
      },
      { what: 'the dead test event with its attempts' },
    )
    expect(logged.test).to.equal(true)
    expect(logged.deadReason).to.match(/^test event not delivered/)
    expect(logged.deadLetter ?? null).to.equal(null)
    expect(logged.attempts.map((a) => a.statusCode)).to.deep.equal([503, 503, 503])
    expect(logged.attempts[0]!.responseExcerpt).to.equal('down for maintenance')
    // the subscription's publisher sees the request, not the outcome quoting the partner's endpoint
    const asPublisher: Principal = { keyId: 'test-publisher', scope: 'publisher', organizationId: h.publisherId }
    expect((await h.cp.getRetryRequest(asPublisher, sub.id, req._id)).outcome).to.equal(null)
    expect((await h.cp.getRetryRequest(partner(), sub.id, req._id)).outcome).to.equal(finished.outcome)
    const refused = await h.cp.requestRetry(ADMIN, sub.id, req.eventId!).catch((e: unknown) => e)
    expect(refused).to.be.instanceOf(ConflictError)
    // a retry of every dead letter leaves it alone
    const all = await h.cp.requestRetry(ADMIN, sub.id, null)
    expect((await done(sub.id, all._id)).outcome).to.equal('re-delivered 0 of 0')
    expect(receiver.received).to.have.length(3)
  })

  it('a MongoDB sink gets the example and then its removal: nothing of the test stays', async () => {
    const partnerDb = uniqueName('tpartner').slice(0, 40)
    dropDatabaseLater(partnerDb)
    const created = await h.cp.createSubscription(ADMIN, {
      partnerId: h.partnerId,
      name: uniqueName('m'),
      eventTypes: ['inventory.level.changed'],
      sink: { type: 'mongodb', connectionString: mongoUri(testConfig()), database: partnerDb, collection: 'levels' },
    })
    const id = created.subscription._id
    worker = await startWorker()
    const req = await h.cp.requestTestEvent(partner(), id, undefined)
    expect((await done(id, req._id)).outcome).to.equal('delivered')
    expect(await h.mongo.db(partnerDb).collection('levels').countDocuments({})).to.equal(0)
    const logged = await waitFor(() => h.cp.deliveries.get(id, req.eventId!), { what: 'the logged test' })
    expect(logged).to.include({ status: 'delivered', test: true })
  })

  it('validates the request and keeps to the scope', async () => {
    const sub = await h.subscribe({ name: uniqueName('t'), url: 'http://127.0.0.1:9/hook' })
    const fieldsOf = async (p: Promise<unknown>) => {
      const err = await p.catch((e: unknown) => e)
      expect(err).to.be.instanceOf(RequestInvalidError)
      return (err as RequestInvalidError).errors.map((e) => e.field)
    }
    expect(await fieldsOf(h.cp.requestTestEvent(ADMIN, sub.id, { eventType: 'deal.registered' }))).to.deep.equal([
      'eventType',
    ])
    expect(await fieldsOf(h.cp.requestTestEvent(ADMIN, sub.id, { eventTyp: 'x' }))).to.deep.equal(['eventTyp'])
    expect(await fieldsOf(h.cp.requestTestEvent(ADMIN, sub.id, []))).to.deep.equal(['(body)'])
    const other = await h.cp.createOrganization(ADMIN, { kind: 'partner', name: 'O', slug: uniqueName('o') })
    const stranger: Principal = { keyId: 'k', scope: 'partner', organizationId: other._id }
    expect(await h.cp.requestTestEvent(stranger, sub.id, {}).catch((e: unknown) => e)).to.be.instanceOf(NotFoundError)
    const req = await h.cp.requestTestEvent(ADMIN, sub.id, {})
    expect(await h.cp.getRetryRequest(stranger, sub.id, req._id).catch((e: unknown) => e)).to.be.instanceOf(
      NotFoundError,
    )
  })
})
