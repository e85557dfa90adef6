/**
 * Idempotency-Key on the creates the audit of issue #7 found undocumented or not honoured: key and
 * webhook-secret rotations (a replay returns the same new credential, no second rotation) and
 * retry requests (a replay returns the same request, no second one).
 */
import { expect } from 'chai'
import { buildFixture, type Fixture } from './management-fixture.ts'

describe('management API: Idempotency-Key on rotations and retry requests', function () {
  let f: Fixture
  before(async () => {
    f = await buildFixture()
  })
  after(async () => {
    await f?.h.close()
  })

  it('replays a key rotation instead of rotating twice', async () => {
    const created = await f.h.call('POST', '/v1/api-keys', {
      key: f.keys.B,
      body: { scope: 'partner', name: 'idem-rotate' },
    })
    expect(created.status, created.text).to.equal(201)
    const headers = { 'Idempotency-Key': 'rotate-key-0001' }
    const first = await f.h.call('POST', `/v1/api-keys/${created.body.id}/rotate`, {
      key: f.keys.B,
      headers,
      body: { overlapSeconds: 600 },
    })
    expect(first.status, first.text).to.equal(201)
    const again = await f.h.call('POST', `/v1/api-keys/${created.body.id}/rotate`, {
      key: f.keys.B,
      headers,
      body: { overlapSeconds: 600 },
    })
    expect(again.status, again.text).to.equal(201)
    expect(again.headers.get('idempotent-replayed')).to.equal('true')
    expect(again.body.id).to.equal(first.body.id)
    expect(again.body.key).to.equal(first.body.key)
    expect(await f.h.db.collection('api_keys').countDocuments({ rotatedFrom: created.body.id })).to.equal(1)
  })

  it('replays a webhook-secret rotation with the same secret', async () => {
    const headers = { 'Idempotency-Key': 'rotate-secret-0001' }
    const first = await f.h.call('POST', `/v1/subscriptions/${f.subA}/webhook-secrets/rotate`, {
      key: f.keys.A,
      headers,
      body: { overlapSeconds: 60 },
    })
    expect(first.status, first.text).to.equal(201)
    const again = await f.h.call('POST', `/v1/subscriptions/${f.subA}/webhook-secrets/rotate`, {
      key: f.keys.A,
      headers,
      body: { overlapSeconds: 60 },
    })
    expect(again.headers.get('idempotent-replayed')).to.equal('true')
    expect(again.body.webhookSecret).to.equal(first.body.webhookSecret)
    const now = await f.h.call('GET', `/v1/subscriptions/${f.subA}`, { key: f.keys.A })
    expect(now.body.webhookSecrets.map((w: { id: string }) => w.id)).to.deep.equal(
      first.body.webhookSecrets.map((w: { id: string }) => w.id),
    )
  })

  it('replays a retry request instead of queuing a second one', async () => {
    const headers = { 'Idempotency-Key': 'retry-dead-0001' }
    const first = await f.h.call('POST', `/v1/subscriptions/${f.subA}/dead-letters/retry`, { key: f.keys.A, headers })
    expect(first.status, first.text).to.equal(202)
    const again = await f.h.call('POST', `/v1/subscriptions/${f.subA}/dead-letters/retry`, { key: f.keys.A, headers })
    expect(again.status).to.equal(202)
    expect(again.headers.get('idempotent-replayed')).to.equal('true')
    expect(again.body.id).to.equal(first.body.id)
    expect(
      await f.h.db.collection('retry_requests').countDocuments({ subscriptionId: f.subA, kind: 'dead-letters' }),
    ).to.equal(1)
    const one = await f.h.call('POST', `/v1/subscriptions/${f.subA}/deliveries/e2/retry`, {
      key: f.keys.A,
      headers: { 'Idempotency-Key': 'retry-one-0001' },
    })
    const oneAgain = await f.h.call('POST', `/v1/subscriptions/${f.subA}/deliveries/e2/retry`, {
      key: f.keys.A,
      headers: { 'Idempotency-Key': 'retry-one-0001' },
    })
    expect(oneAgain.body.id).to.equal(one.body.id)
  })
})
