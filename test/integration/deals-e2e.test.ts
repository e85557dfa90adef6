/**
 * Deals end to end on one running platform (real Kafka, FerretDB, the built-in registry): a partner
 * registers a deal → the deals relay produces deal.registered → the manufacturer's CRM (a local HTTP
 * server behind the publisher's REST sink subscription) receives it → the CRM calls the inbound
 * connector to approve → the partner's webhook receives deal.approved. Another partner, granted the
 * same event types, never receives the first partner's deal events (the audience rule), and learns of
 * a conflict only that it exists. Leads go to the assigned partner and the publisher only.
 */
import { expect } from 'chai'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import {
  startSimulatedCrm,
  CRM_BODY_MAPPING,
  CRM_INBOUND_MAPPING,
  CRM_LEAD_MAPPING,
  type SimulatedCrm,
} from '../../cli/crm-sim.ts'
import { createLogger } from '../../common/logger.ts'
import { TOPICS } from '../../schemas/topics.ts'
import { sleep } from '../../common/timers.ts'
import { testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { runCli } from '../helpers/cli.ts'

type Json = Record<string, any>
const events = (rx: Receiver) => rx.received.map((r) => JSON.parse(r.body) as { type: string; data: Json })

describe('deals end to end: partner → CRM → decision → partner', function () {
  this.timeout(240_000)
  const { config, adminKey } = testPlatformConfig('deals-e2e')
  const logger = createLogger({ level: 'warn', write: () => undefined })
  let p: Platform
  let crm: SimulatedCrm
  let rxA: Receiver
  let rxB: Receiver
  const org: Record<'P' | 'A' | 'B', string> = { P: '', A: '', B: '' }
  const key: Record<'P' | 'A' | 'B', string> = { P: '', A: '', B: '' }
  const tag = uniqueName('e2e').slice(-8)

  const call = async (method: string, path: string, body?: unknown, k = adminKey) => {
    const res = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${k}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Json, text }
  }
  const running = (id: string) =>
    waitFor(async () => (await call('GET', `/v1/connectors/${id}/status`)).body?.state === 'running', {
      timeoutMs: 60_000,
      what: `connector ${id} running`,
    })
  const deal = (domain: string) => ({
    manufacturerId: org.P,
    partnerReference: `opp-${tag}`,
    endCustomer: { name: 'Initech', domain, country: 'DE' },
    lines: [{ sku: 'DRL-2000', quantity: 10, unitPrice: '199.00' }],
    amount: '1990.00',
    currency: 'EUR',
    expectedCloseDate: '2027-02-28',
  })

  before(async () => {
    p = await startPlatform(config, logger, { stopStackOnClose: false })
    await p.contracts
    crm = await startSimulatedCrm()
    rxA = await startReceiver()
    rxB = await startReceiver()
    for (const [k, kind] of [
      ['P', 'publisher'],
      ['A', 'partner'],
      ['B', 'partner'],
    ] as const) {
      const o = await call('POST', '/v1/organizations', {
        kind,
        name: `${k} ${tag}`,
        slug: `${k.toLowerCase()}-${tag}`,
      })
      expect(o.status, o.text).to.equal(201)
      org[k] = o.body.id
      key[k] = (await call('POST', '/v1/api-keys', { scope: kind, organizationId: org[k], name: k })).body.key
    }
    const dealTypes = [...TOPICS.dealRegistrations.eventTypes]
    const leadTypes = [...TOPICS.leads.eventTypes]
    for (const [partner, rx] of [
      ['A', rxA],
      ['B', rxB],
    ] as const) {
      // a wide grant on purpose: no row filter, so only the audience rule keeps partners' deals apart
      const g = await call(
        'POST',
        '/v1/grants',
        { partnerId: org[partner], entitlements: [...dealTypes, ...leadTypes].map((eventType) => ({ eventType })) },
        key.P,
      )
      expect(g.status, g.text).to.equal(201)
      expect((await call('POST', `/v1/grants/${g.body.id}/accept`, undefined, key[partner])).status).to.equal(200)
      const s = await call(
        'POST',
        '/v1/subscriptions',
        { name: 'deals', eventTypes: [...dealTypes, ...leadTypes], sink: { type: 'webhook', url: rx.url } },
        key[partner],
      )
      expect(s.status, s.text).to.equal(201)
      await running(s.body.id)
    }
    const crmSub = await call(
      'POST',
      '/v1/subscriptions',
      {
        name: 'crm',
        eventTypes: dealTypes,
        sink: { type: 'rest', url: `${crm.url}/deals/{value.dealId}`, method: 'PUT', bodyMapping: CRM_BODY_MAPPING },
      },
      key.P,
    )
    expect(crmSub.status, crmSub.text).to.equal(201)
    await running(crmSub.body.id)
    const crmLeads = await call(
      'POST',
      '/v1/subscriptions',
      {
        name: 'crm-leads',
        eventTypes: leadTypes,
        sink: { type: 'rest', url: `${crm.url}/leads/{value.leadId}`, method: 'PUT', bodyMapping: CRM_LEAD_MAPPING },
      },
      key.P,
    )
    expect(crmLeads.status, crmLeads.text).to.equal(201)
    await running(crmLeads.body.id)
    const inbound = await call('POST', '/v1/inbound-connectors', { name: 'crm', mapping: CRM_INBOUND_MAPPING }, key.P)
    expect(inbound.status, inbound.text).to.equal(201)
    crm.connect(p.url + inbound.body.url, inbound.body.secret)
  })

  after(async () => {
    await p?.close()
    await crm?.close()
    await rxA?.close()
    await rxB?.close()
  })

  it("a registration reaches the CRM, the CRM's approval the partner; the other partner gets none of it", async () => {
    const domain = `initech-${tag}.example`
    const r = await call('POST', '/v1/deals', deal(domain), key.A)
    expect(r.status, r.text).to.equal(201)
    const id = r.body.id as string
    const atCrm = await waitFor(() => crm.received.find((x) => x.dealId === id && x.step === 'deal.registered'), {
      timeoutMs: 60_000,
      what: 'the registration at the CRM',
    })
    expect(atCrm.body).to.include({
      Partner_Account__c: org.A,
      Status__c: 'REGISTERED',
      End_Customer_Domain__c: domain,
    })
    const decided = await crm.decide(id, 'approve', 'strategic account')
    expect(decided.status, JSON.stringify(decided.body)).to.equal(200)
    const approved = await waitFor(() => events(rxA).find((e) => e.type === 'deal.approved' && e.data.dealId === id), {
      timeoutMs: 60_000,
      what: 'deal.approved at the partner',
    })
    expect(approved.data.status).to.equal('APPROVED')
    expect(approved.data.decisionReason).to.equal('strategic account')
    expect(approved.data.protectionExpiresAt).to.not.equal(null)
    expect(rxA.received[0]!.headers['webhook-signature']).to.match(/^v1,/)
    // Contoso registers the same opportunity: conflict_review, and it learns no more than that
    const b = await call('POST', '/v1/deals', deal(`www.${domain}`), key.B)
    expect(b.body.state).to.equal('conflict_review')
    const conflictAtB = await waitFor(() => events(rxB).find((e) => e.data.dealId === b.body.id), {
      timeoutMs: 60_000,
      what: "Contoso's own registration event",
    })
    expect(conflictAtB.data.status).to.equal('CONFLICT_REVIEW')
    expect(conflictAtB.data.conflict).to.equal(true)
    expect(JSON.stringify(conflictAtB.data)).to.not.include(id)
    await waitFor(() => crm.received.find((x) => x.dealId === b.body.id), {
      timeoutMs: 60_000,
      what: "Contoso's registration at the CRM",
    })
    const reject = await crm.decide(b.body.id, 'reject', 'already protected')
    expect(reject.status).to.equal(200)
    await waitFor(() => events(rxB).find((e) => e.type === 'deal.rejected' && e.data.dealId === b.body.id), {
      timeoutMs: 60_000,
      what: 'deal.rejected at Contoso',
    })
    await sleep(1000)
    expect(
      events(rxB).every((e) => e.data.partnerId === org.B),
      'Contoso received only its own deals',
    ).to.equal(true)
    expect(
      events(rxA).every((e) => e.data.partnerId === org.A),
      'Northwind received only its own deals',
    ).to.equal(true)
    expect(events(rxA).map((e) => e.type)).to.include.members(['deal.registered', 'deal.approved'])
  })

  it('a lead goes to the assigned partner and the publisher only; accepted, converted into a linked deal', async () => {
    const l = await call(
      'POST',
      '/v1/leads',
      {
        partnerId: org.A,
        company: { name: 'Fabrikam', domain: `fabrikam-${tag}.example`, country: 'CH' },
        productInterest: ['DRL-2000'],
      },
      key.P,
    )
    expect(l.status, l.text).to.equal(201)
    const leadId = l.body.id as string
    await waitFor(() => events(rxA).find((e) => e.type === 'lead.assigned' && e.data.leadId === leadId), {
      timeoutMs: 60_000,
      what: 'lead.assigned at Northwind',
    })
    expect(
      (await call('POST', `/v1/leads/${leadId}/actions`, { action: 'accept' }, key.B)).status,
      'another partner cannot see it',
    ).to.equal(404)
    expect((await call('POST', `/v1/leads/${leadId}/actions`, { action: 'accept' }, key.A)).status).to.equal(200)
    const conv = await call(
      'POST',
      `/v1/leads/${leadId}/convert`,
      { lines: [{ sku: 'DRL-2000', quantity: 3 }], amount: '597.00', currency: 'EUR', expectedCloseDate: '2027-03-31' },
      key.A,
    )
    expect(conv.status, conv.text).to.equal(201)
    expect(conv.body.deal.leadId).to.equal(leadId)
    expect(conv.body.lead.dealId).to.equal(conv.body.deal.id)
    await waitFor(() => events(rxA).find((e) => e.type === 'lead.converted' && e.data.leadId === leadId), {
      timeoutMs: 60_000,
      what: 'lead.converted at Northwind',
    })
    await waitFor(() => crm.received.find((x) => x.dealId === conv.body.deal.id), {
      timeoutMs: 60_000,
      what: 'the converted deal at the CRM',
    })
    await waitFor(
      () => crm.received.find((x) => x.kind === 'leads' && x.dealId === leadId && x.step === 'lead.converted'),
      { timeoutMs: 60_000, what: "the lead's steps at the publisher's CRM" },
    )
    await sleep(500)
    expect(
      events(rxB).some((e) => e.data.leadId === leadId),
      "Contoso never sees Northwind's lead",
    ).to.equal(false)
  })

  it('the CLI: deals list|show|approve|return; a refused step is one line naming the state', async () => {
    const r = await call('POST', '/v1/deals', deal(`cli-${tag}.example`), key.A)
    const id = r.body.id as string
    const env = (k: string) => ({ DISTRIBUTARY_API_URL: p.url, DISTRIBUTARY_API_KEY: k })
    const list = await runCli(['deals', 'list', '--state', 'submitted'], env(key.P))
    expect(list.code, list.err).to.equal(0)
    expect(list.out).to.include(id)
    const shown = await runCli(['deals', 'show', id, '--json'], env(key.A))
    expect(JSON.parse(shown.out).history[0].action).to.equal('submit')
    const ret = await runCli(['deals', 'return', id, '--reason', 'add the contact'], env(key.P))
    expect(ret.code, ret.err).to.equal(0)
    expect(ret.out).to.include(`${id}: returned`)
    const refused = await runCli(['deals', 'approve', id], env(key.P))
    expect(refused.code).to.equal(1)
    expect(refused.err).to.match(
      /409 Conflict: action: deal .* is returned: approve is not allowed; allowed actions: none/,
    )
    const leads = await runCli(['leads', 'list', '--json'], env(key.A))
    expect(leads.code, leads.err).to.equal(0)
    expect(JSON.parse(leads.out)).to.be.an('array')
  })
})
