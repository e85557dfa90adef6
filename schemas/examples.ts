/**
 * One example per event type, valid against its contract (checked by test/unit/openapi-document.test.ts):
 * the OpenAPI and AsyncAPI documents show them, and a subscription's test event carries one
 * (connectors/sink/worker/test-event.ts).
 */
import { ALL_TOPICS } from './topics.ts'

/** A partner's profile: in partner.profile.changed's example, and a partner's profile in the management API's. */
export const PARTNER_PROFILE_EXAMPLE = {
  legalName: 'Northwind Distribution GmbH',
  partnerType: 'DISTRIBUTOR',
  tier: 'GOLD',
  status: 'ACTIVE',
  headquartersCountry: 'DE',
  regions: ['DE', 'AT'],
}

/** One example batch per event type (JSON, as the ingestion route takes it). */
export const EVENT_EXAMPLES: Record<string, unknown[]> = {
  'inventory.level.changed': [
    {
      manufacturerId: 'acme',
      sku: 'DRL-2000',
      locationId: 'DE-HAM-1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: 120,
      reserved: 20,
      available: 100,
      incoming: [{ quantity: 50, expectedDate: '2026-12-01', reference: 'PO-4711' }],
      sequence: 42,
      occurredAt: '2026-11-24T10:00:00Z',
    },
  ],
  'partner.profile.changed': [
    {
      partnerId: 'org_65f000000000000000000001',
      ...PARTNER_PROFILE_EXAMPLE,
      sequence: 3,
      occurredAt: '2026-11-24T10:00:00Z',
    },
  ],
}
const DEAL = {
  dealId: '0193f5a2-7c1e-7b8a-9c3d-2e4f5a6b7c8d',
  manufacturerId: 'acme',
  partnerId: 'org_65f000000000000000000001',
  status: 'REGISTERED',
  endCustomer: { name: 'Contoso Ltd', country: 'GB' },
  lines: [{ sku: 'DRL-2000', quantity: 40, unitPrice: '199.00' }],
  amount: '7960.00',
  currency: 'EUR',
  expectedCloseDate: '2027-01-31',
  registeredAt: '2026-11-24T09:00:00Z',
  sequence: 1,
  occurredAt: '2026-11-24T09:00:00Z',
}
/** The same example for every event type of the topic of this value contract. */
const forEveryType = (valueSchema: string, example: unknown) => {
  for (const t of ALL_TOPICS.find((x) => x.valueSchema === valueSchema)?.eventTypes ?? []) EVENT_EXAMPLES[t] = [example]
}
forEveryType('deal-registration', DEAL)
const LEAD = {
  leadId: 'lead_65f000000000000000000009',
  manufacturerId: 'acme',
  partnerId: 'org_65f000000000000000000001',
  status: 'ASSIGNED',
  company: { name: 'Fabrikam AG', domain: 'fabrikam.example', country: 'CH' },
  contact: { name: 'Mia Keller', email: 'mia@fabrikam.example' },
  productInterest: ['DRL-2000'],
  acceptBy: '2026-11-26T09:00:00Z',
  sequence: 1,
  occurredAt: '2026-11-24T09:00:00Z',
}
forEveryType('lead', LEAD)
const HEALTH = {
  manufacturerId: 'acme',
  partnerId: 'org_65f000000000000000000001',
  subscriptionId: 'sub_65f000000000000000000002',
  subscriptionName: 'stock to ERP',
  freshnessSeconds: 312.4,
  objectiveSeconds: 300,
  breachedSince: '2026-11-24T09:55:12Z',
  sequence: 1764064512400,
  occurredAt: '2026-11-24T10:00:12Z',
}
EVENT_EXAMPLES['subscription.freshness.breached'] = [{ ...HEALTH, status: 'BREACHED', breachedForSeconds: null }]
EVENT_EXAMPLES['subscription.freshness.recovered'] = [
  {
    ...HEALTH,
    status: 'RECOVERED',
    freshnessSeconds: 0,
    breachedForSeconds: 842.1,
    sequence: 1764065354500,
    occurredAt: '2026-11-24T10:09:14Z',
  },
]
