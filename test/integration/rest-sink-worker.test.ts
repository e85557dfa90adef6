/**
 * The REST sink in the sink worker, end to end: inventory levels produced to a real Kafka topic, a
 * subscription stored in the control plane (FerretDB) with OAuth2 credentials sealed at rest, and a
 * CRM-like API with its token endpoint on 127.0.0.1.
 */
import { expect } from 'chai'
import { DEAD_LETTER_HEADER } from '../../schemas/index.ts'
import { testKafka, uniqueName, waitFor } from '../helpers/env.ts'
import { startCrm, type Crm } from '../helpers/crm.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'

describe('sink worker: Kafka to a REST API (CRM upsert)', function () {
  this.timeout(60_000)
  let h: SinkHarness
  let crm: Crm

  beforeEach(async () => {
    h = await startSinkHarness()
    crm = await startCrm()
  })
  afterEach(async () => {
    await h.close()
    await crm.close()
  })

  const subscribe = (name: string, sink: Record<string, unknown>, deliveryPolicy: Record<string, unknown> = {}) =>
    h.subscribe({
      name,
      url: '',
      sink: {
        type: 'rest',
        url: `${crm.url}/api/stock/{value.sku}`,
        method: 'PUT',
        auth: { type: 'oauth2', tokenUrl: crm.tokenUrl, clientId: crm.clientId, clientSecret: crm.clientSecret },
        ...sink,
      } as never,
      deliveryPolicy: { retrySchedule: [0.05, 0.1], timeoutMs: 2000, ...deliveryPolicy },
    })

  it('upserts by external id: the CRM ends with the latest state of every key, with one token', async () => {
    const s = await subscribe('crm', {
      bodyMapping:
        '{ "externalId": value.sku, "available": value.available, "seq": value.sequence, "eventId": eventId }',
    })
    await h.worker()
    await waitFor(async () => (await h.cp.getConnector(ADMIN, s.id)).status?.state === 'running', { what: 'running' })
    const skus = ['SKU-1', 'SKU-2', 'SKU/3', 'SKU 4']
    const levels = []
    for (let seq = 1; seq <= 8; seq++) for (const sku of skus) levels.push({ sku, seq })
    const ids = await h.produce(levels)
    await waitFor(() => skus.every((sku) => (crm.records.get(sku) as { seq?: number } | undefined)?.seq === 8), {
      what: 'latest state per key',
    })
    for (const sku of skus) expect(crm.records.get(sku)).to.deep.include({ externalId: sku, available: 8, seq: 8 })
    // per key, the CRM saw the versions in order; every call carried its event id as idempotency key
    for (const sku of skus) {
      const seqs = crm.requests
        .filter((r) => r.status === 200 && (r.body as { externalId: string }).externalId === sku)
        .map((r) => (r.body as { seq: number }).seq)
      expect(seqs.filter((v, i) => i === 0 || v !== seqs[i - 1])).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8])
    }
    expect(new Set(crm.requests.map((r) => r.headers['idempotency-key']))).to.deep.equal(new Set(ids))
    expect(
      crm.requests.every((r) => (r.body as { eventId: string }).eventId === r.headers['idempotency-key']),
    ).to.equal(true)
    expect(crm.tokenRequests).to.have.length(1)
  })

  it(
    'sends an event its body mapping fails on to the dead letters with the ' + 'reason, and delivers the others',
    async () => {
      const s = await subscribe('crm-mapping', {
        bodyMapping:
          'value.sequence = 2 ? $error("sequence 2 cannot be mapped") : { "externalId": ' +
          'value.sku, "seq": value.sequence }',
      })
      await h.worker()
      await waitFor(async () => (await h.cp.getConnector(ADMIN, s.id)).status?.state === 'running', { what: 'running' })
      const ids = await h.produce([1, 2, 3].map((seq) => ({ sku: 'SKU-M', seq })))
      await waitFor(() => (crm.records.get('SKU-M') as { seq?: number } | undefined)?.seq === 3, {
        what: 'the others delivered',
      })
      const dead = await waitFor(
        async () => (await h.cp.deliveries.search({ subscriptionId: s.id, status: 'dead' }, { limit: 10 })).items[0],
        { what: 'dead delivery' },
      )
      expect(dead.eventId).to.equal(ids[1])
      expect(dead.deadReason).to.match(/^rejected: body mapping failed for event .*sequence 2 cannot be mapped/)
      expect(crm.requests.map((r) => (r.body as { seq: number }).seq)).to.deep.equal([1, 3])
      // the dead-letter topic holds it too, with the reason in its headers
      const consumer = testKafka().consumer({ groupId: uniqueName('dlq') })
      await consumer.connect()
      await consumer.subscribe({ topics: [h.deadLetterTopic], fromBeginning: true })
      const reasons: string[] = []
      await consumer.run({
        eachMessage: async ({ message }) => void reasons.push(String(message.headers?.[DEAD_LETTER_HEADER.reason])),
      })
      try {
        await waitFor(() => reasons.length >= 1, { what: 'dead-letter topic' })
      } finally {
        await consumer.disconnect()
      }
      expect(reasons[0]).to.include('sequence 2 cannot be mapped')
    },
  )

  it('batches events of different keys per request (deliveryPolicy.batchSize), keeping per-key order', async () => {
    const s = await subscribe(
      'crm-batch',
      {
        url: `${crm.url}/api/stock`,
        method: 'POST',
        bodyMapping: '{ "externalId": value.sku, "seq": value.sequence }',
        batchWaitMs: 30,
      },
      { batchSize: 10 },
    )
    await h.worker()
    await waitFor(async () => (await h.cp.getConnector(ADMIN, s.id)).status?.state === 'running', { what: 'running' })
    const skus = [...Array(12).keys()].map((i) => `B-${i}`)
    const levels = []
    for (let seq = 1; seq <= 5; seq++) for (const sku of skus) levels.push({ sku, seq })
    await h.produce(levels)
    await waitFor(() => skus.every((sku) => (crm.records.get(sku) as { seq?: number } | undefined)?.seq === 5), {
      what: 'latest state per key',
    })
    const bodies = crm.requests
      .filter((r) => r.status === 200)
      .map((r) => r.body as Array<{ externalId: string; seq: number }>)
    expect(Math.max(...bodies.map((b) => b.length))).to.be.greaterThan(1)
    expect(bodies.every((b) => b.length <= 10 && new Set(b.map((i) => i.externalId)).size === b.length)).to.equal(true)
    for (const sku of skus)
      expect(
        bodies
          .flat()
          .filter((i) => i.externalId === sku)
          .map((i) => i.seq),
      ).to.deep.equal([1, 2, 3, 4, 5])
  })
})
