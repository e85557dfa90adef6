/**
 * What the fuzzer's path ids point at, made through the API as a user would (as
 * test/integration/management-fixture.ts does): publisher P offering partner A a grant it accepted, a key of
 * each, A's webhook subscription with a test event, P's csv-drop source, inbound connector and lead, A's deal.
 * Operations that destroy or replace what they name (delete, revoke, rotate) get spare objects of P, a set per
 * pass, so the others keep hitting live ones whatever the order.
 */

export interface FuzzFixture {
  /** Keys the fuzzer sends: a publisher's and a partner's. */
  keys: { publisher: string; partner: string }
  /** Path parameter values, by the document's parameter names. */
  ids: Record<string, string>
  /** Per pass: a key its caller sees, and what the destructive operations name (spareKeyId, ...). */
  perPass: Record<'admin' | 'publisher', Record<string, string>>
}

type Call = (method: string, path: string, key: string, body?: unknown) => Promise<Record<string, unknown>>

/** A call that must succeed: anything else stops the run, naming the request and the answer. */
function caller(baseUrl: string): Call {
  return async (method, path, key, body) => {
    const res = await fetch(baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`fixture: ${method} ${path} answered ${res.status}: ${text}`)
    return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>)
  }
}

const WEBHOOK = 'http://127.0.0.1:9/hook' // the discard port: allowed by URL_GUARD_ALLOWLIST, refuses connections

export async function createFixture(baseUrl: string, adminKey: string): Promise<FuzzFixture> {
  const call = caller(baseUrl + '/v1')
  const suffix = Math.random().toString(36).slice(2, 8)
  const org = async (kind: string, slug: string) =>
    (await call('POST', '/organizations', adminKey, { kind, name: slug, slug: `${slug}-${suffix}` })).id as string
  const P = await org('publisher', 'fuzz-pub')
  const A = await org('partner', 'fuzz-partner-a')
  const apiKey = async (scope: string, organizationId: string, name: string) =>
    (await call('POST', '/api-keys', adminKey, { scope, organizationId, name })) as { id: string; key: string }
  const kP = await apiKey('publisher', P, 'fuzz publisher')
  const kA = await apiKey('partner', A, 'fuzz partner')

  const grant = async (partnerId: string) =>
    (await call('POST', '/grants', kP.key, {
      partnerId,
      entitlements: [{ eventType: 'inventory.level.changed', fields: ['sku', 'available'] }],
    })) as { id: string }
  const g = await grant(A)
  await call('POST', `/grants/${g.id}/accept`, kA.key)

  const subscription = async (key: string, name: string, eventType: string) =>
    (await call('POST', '/subscriptions', key, {
      name,
      eventTypes: [eventType],
      sink: { type: 'webhook', url: WEBHOOK },
    })) as { id: string }
  const sub = await subscription(kA.key, 'fuzz-stock', 'inventory.level.changed')
  const test = (await call('POST', `/subscriptions/${sub.id}/test`, kA.key)) as { id: string }

  const source = async (name: string) =>
    (await call('POST', '/sources', kP.key, { name, kind: 'csv-drop', config: { dir: name } })) as { id: string }
  const src = await source('fuzz-drop')
  const inbound = async (name: string) =>
    (await call('POST', '/inbound-connectors', kP.key, { name })) as { id: string }
  const inb = await inbound('fuzz-crm')
  const deal = (await call('POST', '/deals', kA.key, {
    manufacturerId: P,
    endCustomer: { name: 'Initech', domain: 'initech.example', country: 'DE' },
    lines: [{ sku: 'SKU-1', quantity: 1 }],
    amount: '10.00',
    currency: 'EUR',
    expectedCloseDate: '2030-01-31',
  })) as { id: string }
  const lead = (await call('POST', '/leads', kP.key, {
    partnerId: A,
    company: { name: 'Fabrikam', country: 'CH' },
    productInterest: ['SKU-1'],
  })) as { id: string }

  // spares of publisher P, one set per pass: both the admin and P may delete them
  const spares = async (pass: string) => ({
    keyId: pass === 'admin' ? kA.id : kP.id, // a key the pass's caller sees
    spareKeyId: (await apiKey('publisher', P, `fuzz spare ${pass}`)).id,
    spareGrantId: (await grant(await org('partner', `fuzz-spare-${pass}`))).id, // one grant per partner
    spareSubscriptionId: (await subscription(kP.key, `fuzz-spare-${pass}`, 'deal.registered')).id,
    spareSourceId: (await source(`fuzz-drop-spare-${pass}`)).id,
    spareInboundId: (await inbound(`fuzz-crm-spare-${pass}`)).id,
  })
  return {
    keys: { publisher: kP.key, partner: kA.key },
    perPass: { admin: await spares('admin'), publisher: await spares('publisher') },
    ids: {
      organizationId: A,
      grantId: g.id,
      subscriptionId: sub.id,
      connectorId: sub.id,
      requestId: test.id,
      eventId: await deliveredEventId(call, adminKey, sub.id),
      sourceId: src.id,
      inboundId: inb.id,
      dealId: deal.id,
      leadId: lead.id,
    },
  }
}

/**
 * The id of an event in the subscription's delivery log: the worker's first (failed) attempt of the test
 * event, within a few seconds. None by then: an id no delivery has (the delivery operations answer 404).
 */
async function deliveredEventId(call: Call, key: string, subscriptionId: string): Promise<string> {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    const page = await call('GET', `/subscriptions/${subscriptionId}/deliveries?limit=1`, key)
    const first = (page.items as Array<{ eventId?: unknown }> | undefined)?.[0]?.eventId
    if (typeof first === 'string') return first
    await new Promise((r) => setTimeout(r, 500))
  }
  return 'fuzz-no-delivery-yet'
}
