/**
 * A populated management API shared by the management tests: a publisher P granting partner A,
 * an unrelated partner B and publisher Q, keys for each, A's webhook subscription and a few
 * delivery-log records written through the runtime's DeliveryLog.
 */
import { expect } from 'chai'
import { startManagement, type ManagementHarness, type HarnessOptions } from '../helpers/management.ts'

export interface Fixture {
  h: ManagementHarness
  orgs: { P: string; Q: string; A: string; B: string }
  keys: { P: string; Q: string; A: string; B: string }
  keyIds: { A: string; B: string }
  grantPA: string
  subA: string
  webhookSecretA: string
  /** A csv-drop source of publisher P (no worker runs it here). */
  srcP: string
  /** A deal partner A registered with P, a lead P assigned to A, P's inbound connector and its secret. */
  dealA: string
  leadPA: string
  inbP: string
  inbSecret: string
  /** A test event of subA, requested (no worker runs it here). */
  rtrA: string
}

export async function buildFixture(options: HarnessOptions = {}): Promise<Fixture> {
  const h = await startManagement({
    ...options,
    overrides: { urlGuard: { allowlist: '127.0.0.1' }, ...(options.overrides ?? {}) },
  })
  const mk = async (kind: string, slug: string) => {
    const r = await h.call('POST', '/v1/organizations', { body: { kind, name: slug.toUpperCase(), slug } })
    expect(r.status, r.text).to.equal(201)
    return r.body.id as string
  }
  const orgs = {
    P: await mk('publisher', 'pub-p'),
    Q: await mk('publisher', 'pub-q'),
    A: await mk('partner', 'partner-a'),
    B: await mk('partner', 'partner-b'),
  }
  const key = async (scope: string, organizationId: string) => {
    const r = await h.call('POST', '/v1/api-keys', { body: { scope, organizationId, name: `${scope}-key` } })
    expect(r.status, r.text).to.equal(201)
    return r.body as { id: string; key: string }
  }
  const kP = await key('publisher', orgs.P)
  const kQ = await key('publisher', orgs.Q)
  const kA = await key('partner', orgs.A)
  const kB = await key('partner', orgs.B)
  const g = await h.call('POST', '/v1/grants', {
    key: kP.key,
    body: {
      partnerId: orgs.A,
      entitlements: [
        {
          eventType: 'inventory.level.changed',
          filter: { region: { in: ['EU', 'US'] } },
          fields: ['sku', 'available', 'warehouse'],
        },
        { eventType: 'deal.registered', filter: { partnerId: { in: ['$partnerId'] } } },
      ],
    },
  })
  expect(g.status, g.text).to.equal(201)
  const accepted = await h.call('POST', `/v1/grants/${g.body.id}/accept`, { key: kA.key }) // the partner's side
  expect(accepted.status, accepted.text).to.equal(200)
  const s = await h.call('POST', '/v1/subscriptions', {
    key: kA.key,
    body: {
      name: 'stock',
      eventTypes: ['inventory.level.changed'],
      fields: ['sku', 'available'],
      filter: { region: { in: ['EU'] } },
      sink: { type: 'webhook', url: 'http://127.0.0.1:9/hook' },
    },
  })
  expect(s.status, s.text).to.equal(201)
  const subA = s.body.id as string
  const src = await h.call('POST', '/v1/sources', {
    key: kP.key,
    body: { name: 'p-drop', kind: 'csv-drop', config: { dir: 'p-drop' } },
  })
  expect(src.status, src.text).to.equal(201)
  // durations as the sinks log them: milliseconds to a tenth (consumers/http/client.ts)
  const base = { subscriptionId: subA, partnerId: orgs.A, publisherId: orgs.P, eventType: 'inventory.level.changed' }
  await h.cp.deliveries.recordAttempt({
    ...base,
    eventId: 'e1',
    key: 'sku-1',
    status: 'delivered',
    attempt: { at: new Date(), durationMs: 12.4, statusCode: 200, error: null, responseExcerpt: 'ok' },
  })
  await h.cp.deliveries.recordAttempt({
    ...base,
    eventId: 'e2',
    key: 'sku-2',
    status: 'retrying',
    attempt: { at: new Date(), durationMs: 30.5, statusCode: 500, error: 'HTTP 500', responseExcerpt: 'boom' },
  })
  await h.cp.deliveries.recordAttempt({
    ...base,
    eventId: 'e2',
    key: 'sku-2',
    status: 'dead',
    deadReason: 'retries exhausted',
    attempt: { at: new Date(), durationMs: 31.2, statusCode: 500, error: 'HTTP 500', responseExcerpt: 'boom' },
  })
  const deal = await h.call('POST', '/v1/deals', {
    key: kA.key,
    body: {
      manufacturerId: orgs.P,
      endCustomer: { name: 'Initech', domain: 'initech.example', country: 'DE' },
      lines: [{ sku: 'SKU-1', quantity: 1 }],
      amount: '10.00',
      currency: 'EUR',
      expectedCloseDate: '2027-01-31',
    },
  })
  expect(deal.status, deal.text).to.equal(201)
  const lead = await h.call('POST', '/v1/leads', {
    key: kP.key,
    body: { partnerId: orgs.A, company: { name: 'Fabrikam', country: 'CH' }, productInterest: ['SKU-1'] },
  })
  expect(lead.status, lead.text).to.equal(201)
  const inb = await h.call('POST', '/v1/inbound-connectors', { key: kP.key, body: { name: 'crm' } })
  expect(inb.status, inb.text).to.equal(201)
  const rtr = await h.call('POST', `/v1/subscriptions/${subA}/test`, { key: kA.key })
  expect(rtr.status, rtr.text).to.equal(202)
  return {
    rtrA: rtr.body.id,
    h,
    dealA: deal.body.id,
    leadPA: lead.body.id,
    inbP: inb.body.id,
    inbSecret: inb.body.secret,
    orgs,
    keys: { P: kP.key, Q: kQ.key, A: kA.key, B: kB.key },
    keyIds: { A: kA.id, B: kB.id },
    grantPA: g.body.id,
    subA,
    webhookSecretA: s.body.webhookSecret,
    srcP: src.body.id,
  }
}
