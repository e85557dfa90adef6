/**
 * Row filters on nested fields (`endCustomer.country` of a deal): stored although MongoDB keys must not
 * hold dots, shown back as given, checked against the grant, and applied by the data plane.
 */
import { expect } from 'chai'
import { decide } from '../../connectors/sink/entitlement.ts'
import type { GrantDoc } from '../../control-plane/types.ts'
import { startManagement, type ManagementHarness } from '../helpers/management.ts'

describe('row filters on nested fields', function () {
  this.timeout(60_000)
  let h: ManagementHarness

  before(async () => {
    h = await startManagement({ overrides: { urlGuard: { allowlist: '127.0.0.1' } } })
  })
  after(() => h?.close())

  it(
    'a grant and a subscription filter on endCustomer.country are stored, shown ' + 'as given, checked and enforced',
    async () => {
      const pub = await h.call('POST', '/v1/organizations', {
        body: { kind: 'publisher', name: 'Acme', slug: 'acme-nested' },
      })
      const partner = await h.call('POST', '/v1/organizations', {
        body: { kind: 'partner', name: 'Reseller', slug: 'reseller-nested' },
      })
      const filter = { 'endCustomer.country': { in: ['DE', 'AT'] }, partnerId: { in: ['$partnerId'] } }
      const grant = await h.call('POST', '/v1/grants', {
        body: {
          publisherId: pub.body.id,
          partnerId: partner.body.id,
          entitlements: [{ eventType: 'deal.registered', filter }],
        },
      })
      expect(grant.status, grant.text).to.equal(201)
      expect(grant.body.entitlements[0].filter).to.deep.equal(filter)
      expect((await h.call('POST', `/v1/grants/${grant.body.id}/accept`)).status).to.equal(200)
      const read = await h.call('GET', `/v1/grants/${grant.body.id}`)
      expect(read.body.entitlements[0].filter).to.deep.equal(filter)

      const wider = await h.call('POST', '/v1/subscriptions', {
        body: {
          partnerId: partner.body.id,
          name: 'crm-wide',
          eventTypes: ['deal.registered'],
          filter: { 'endCustomer.country': { in: ['DE', 'FR'] } },
          sink: { type: 'webhook', url: 'http://127.0.0.1:9/hooks' },
        },
      })
      expect(wider.status, wider.text).to.equal(422)
      expect(wider.body.errors.map((e: { field: string }) => e.field)).to.include('filter.endCustomer.country')

      const narrow = await h.call('POST', '/v1/subscriptions', {
        body: {
          partnerId: partner.body.id,
          name: 'crm-de',
          eventTypes: ['deal.registered'],
          filter: { 'endCustomer.country': { in: ['DE'] } },
          sink: { type: 'webhook', url: 'http://127.0.0.1:9/hooks' },
        },
      })
      expect(narrow.status, narrow.text).to.equal(201)
      expect(narrow.body.filter).to.deep.equal({ 'endCustomer.country': { in: ['DE'] } })
      const patched = await h.call('PATCH', `/v1/subscriptions/${narrow.body.id}`, { body: { name: 'crm-de-2' } })
      expect(patched.status, patched.text).to.equal(200)
      expect(patched.body.filter).to.deep.equal({ 'endCustomer.country': { in: ['DE'] } })

      // The data plane reads the stored documents as they are.
      const storedGrant = (await h.db.collection<GrantDoc>('grants').findOne({ _id: grant.body.id }))!
      const storedSub = (await h.db.collection('subscriptions').findOne({ _id: narrow.body.id }))!
      const deal = (country: string) => ({
        value: { manufacturerId: pub.body.id, partnerId: partner.body.id, endCustomer: { name: 'X', country } },
        headers: { ce_publisherid: pub.body.id as string },
        eventType: 'deal.registered',
      })
      const sub = { partnerId: partner.body.id as string, filter: storedSub.filter }
      expect(decide(deal('DE'), sub, [storedGrant]).deliver).to.equal(true)
      expect(decide(deal('AT'), sub, [storedGrant]).deliver, 'outside the subscription filter').to.equal(false)
      expect(decide(deal('FR'), { partnerId: partner.body.id }, [storedGrant]).deliver, 'outside the grant').to.equal(
        false,
      )
    },
  )
})
