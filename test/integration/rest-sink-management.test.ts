/**
 * Saving a REST sink through the management API: the JSONata body mapping, URL template and auth are
 * checked when the subscription is saved, and a problem names the field (and the mapping's position).
 */
import { expect } from 'chai'
import { buildFixture, type Fixture } from './management-fixture.ts'

describe('management API: REST sink validation', function () {
  this.timeout(60_000)
  let f: Fixture
  before(async () => {
    f = await buildFixture()
  })
  after(async () => {
    await f?.h.close()
  })

  const rest = (sink: Record<string, unknown>, name = 'crm') => ({
    name,
    eventTypes: ['inventory.level.changed'],
    sink: { type: 'rest', url: 'http://127.0.0.1:9/api/stock/{value.sku}', method: 'PUT', ...sink },
  })

  it(
    'refuses a body mapping that is not valid JSONata with a 422 naming ' + 'sink.bodyMapping and the position',
    async () => {
      const r = await f.h.call('POST', '/v1/subscriptions', {
        key: f.keys.A,
        body: rest({ bodyMapping: '{ "sku": value.sku, "qty": }' }),
      })
      expect(r.status, r.text).to.equal(422)
      expect(r.headers.get('content-type')).to.match(/^application\/problem\+json/)
      const e = r.body.errors.find((x: { field: string }) => x.field === 'sink.bodyMapping')
      expect(e, r.text).to.not.equal(undefined)
      expect(e.position).to.be.a('number').and.be.within(20, 28)
      expect(e.message).to.include('JSONata').and.include(`position ${e.position}`)
    },
  )

  it('refuses a placeholder in the host, an unknown placeholder and incomplete auth, each named', async () => {
    const r = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: rest({
        url: 'http://127.0.0.1:9/api/{valu.sku}',
        auth: { type: 'oauth2', tokenUrl: 'http://127.0.0.1:9/token', clientId: 'cid' },
        headers: { 'Idempotency-Key': 'x' },
      }),
    })
    expect(r.status, r.text).to.equal(422)
    expect(r.body.errors.map((x: { field: string }) => x.field).sort()).to.deep.equal([
      'sink.auth.clientSecret',
      'sink.headers.Idempotency-Key',
      'sink.url',
    ])
    const host = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: rest({ url: 'http://{key}.example.com/api' }),
    })
    expect(host.status, host.text).to.equal(422)
    expect(host.body.errors[0].field).to.equal('sink.url')
  })

  it('accepts a valid REST sink with mapping, batching, audience and client auth, and checks a patch too', async () => {
    const ok = await f.h.call('POST', '/v1/subscriptions', {
      key: f.keys.A,
      body: {
        ...rest(
          {
            url: 'http://127.0.0.1:9/api/stock',
            method: 'POST',
            bodyMapping: '{ "externalId": value.sku, "available": value.available }',
            batchWaitMs: 100,
            auth: {
              type: 'oauth2',
              tokenUrl: 'http://127.0.0.1:9/token',
              clientId: 'cid',
              clientSecret: 's3cret',
              audience: 'https://crm.example',
              clientAuth: 'body',
            },
          },
          'crm-batch',
        ),
        deliveryPolicy: { batchSize: 50 },
      },
    })
    expect(ok.status, ok.text).to.equal(201)
    expect(ok.body.sink.bodyMapping).to.include('externalId')
    const bad = await f.h.call('PATCH', `/v1/subscriptions/${ok.body.id}`, {
      key: f.keys.A,
      body: { sink: { type: 'rest', url: 'http://127.0.0.1:9/api/stock', method: 'POST', bodyMapping: '$$$(' } },
    })
    expect(bad.status, bad.text).to.equal(422)
    expect(bad.body.errors[0].field).to.equal('sink.bodyMapping')
  })
})
