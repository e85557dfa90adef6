/**
 * The deals, leads and inbound-connector part of the management API document (docs/deals.md),
 * spread into document.ts.
 */
import { DEAL_ACTIONS, DEAL_STATES, LEAD_STATES } from '../../control-plane/deals/index.ts'
import {
  displayName,
  body,
  closed,
  dateTime,
  id,
  IDEMPOTENCY,
  nullableDateTime,
  object,
  ok,
  operationsOf,
  pathId,
  pathParam,
  query,
  ref,
} from './parts.ts'

const DEAL = pathParam('dealId', 'Id of the deal registration (a UUID).', { type: 'string', format: 'uuid' })
const LEAD = pathId('leadId', 'lead', 'lead')
const orgId = id('org')
const country = { type: 'string', pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2, e.g. DE.' }
const decimal = (what: string) => ({
  type: 'string',
  pattern: '^-?\\d{1,16}(\\.\\d{1,4})?$',
  description: `${what}, a decimal as a string, e.g. "199.00".`,
})

export const dealTags = [
  {
    name: 'deals',
    description:
      'Deal registration: partners register, publishers decide (or their CRM does), the platform expires approvals.',
  },
  {
    name: 'leads',
    description:
      'Leads a publisher shares with one partner at a time: accepted, declined, expired, converted into a deal.',
  },
  {
    name: 'inbound',
    description: "Publishers' inbound connectors: their CRM's decisions on deals, signed like Standard Webhooks.",
  },
]

const endCustomer = closed(['name', 'country'], {
  name: displayName(),
  domain: {
    type: ['string', 'null'],
    maxLength: 253,
    // what hostOf (control-plane/deals/customer.ts) reads a host name from: a bare domain, or a URL naming one; in the
    // schema, so that "not a domain" is refused as invalid (it passed the schema and was a 422)
    pattern:
      '^\\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:[^@/]*@)?[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+\\.?(?:[/?#:][\\s\\S]*)?\\s*$',
    description:
      'Web domain, e.g. contoso.com: conflicts are found by its registrable domain ' +
      '(shop.contoso.co.uk is contoso.co.uk).',
  },
  country,
  industry: { type: ['string', 'null'], maxLength: 200 },
})
const line = closed(['sku', 'quantity'], {
  sku: { type: 'string', minLength: 1, maxLength: 200 },
  quantity: { type: 'integer', minimum: 1 },
  unitPrice: { ...decimal('Price per unit'), type: ['string', 'null'] },
})
const content = {
  partnerReference: { type: ['string', 'null'], maxLength: 200, description: "The partner's own opportunity number." },
  endCustomer,
  lines: { type: 'array', minItems: 1, maxItems: 200, items: line },
  amount: decimal('Total expected value'),
  currency: { type: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217, e.g. EUR.' },
  expectedCloseDate: { type: 'string', format: 'date' },
}
const DEAL_EXAMPLE = {
  manufacturerId: 'org_65f000000000000000000002',
  partnerReference: 'NW-OPP-1042',
  endCustomer: { name: 'Contoso Ltd', domain: 'contoso.co.uk', country: 'GB' },
  lines: [{ sku: 'DRL-2000', quantity: 40, unitPrice: '199.00' }],
  amount: '7960.00',
  currency: 'EUR',
  expectedCloseDate: '2027-01-31',
}
const LEAD_EXAMPLE = {
  partnerId: 'org_65f000000000000000000001',
  company: { name: 'Fabrikam AG', domain: 'fabrikam.example', country: 'CH' },
  contact: { name: 'Mia Keller', email: 'mia@fabrikam.example' },
  productInterest: ['DRL-2000'],
}

const deals = operationsOf('deals')
const leads = operationsOf('leads')

export const dealPaths = {
  ...deals.collection('Deal', DEAL, {
    list: {
      summary: 'List deal registrations (a partner its own, a publisher those registered with it)',
      filters: [
        query('state', { type: 'string', enum: [...DEAL_STATES] }, 'Only deals in this state.'),
        query('partnerId', orgId, "Only this partner's."),
        query('manufacturerId', orgId, 'Only those registered with this publisher.'),
      ],
    },
    create: {
      summary: 'Register a deal (partner key, or admin naming partnerId)',
      answer: 'Registered: submitted, or conflict_review when another registration claims the customer and a product.',
      example: DEAL_EXAMPLE,
      description:
        'The partner must hold an accepted grant of the publisher (`manufacturerId`), ' +
        'or it is a 422 naming `manufacturerId`. The content is checked against the deal contract ' +
        '(a fault is a 422 naming the field). The platform assigns `dealId` and publishes `deal.registered` ' +
        'on deals.registrations.',
    },
    get: { summary: 'Get a deal registration with the history of its steps', answer: 'The deal and its history.' },
  }),
  '/deals/{dealId}/actions': {
    post: deals.mutation(
      'Take a step: the partner resubmits or cancels, ' +
        'the publisher reviews, approves, rejects, returns, marks won or lost',
      'actOnDeal',
      [DEAL],
      { '200': ok('The deal after the step.', ref('Deal')) },
      {
        description:
          "An action not allowed in the deal's state (or not the caller's) is a 409 naming `currentState` and " +
          '`allowedActions`. An approval of a customer and product another approval holds is a 409 too.',
        requestBody: body(ref('DealAction'), { action: 'approve', reason: 'fits the program' }),
      },
    ),
  },
  ...leads.collection('Lead', LEAD, {
    list: {
      summary: 'List leads (a partner those assigned to it, a publisher its own)',
      filters: [query('state', { type: 'string', enum: [...LEAD_STATES] }, 'Only leads in this state.')],
    },
    create: {
      summary: 'Assign a lead to a partner (publisher key)',
      answer: 'Assigned; the partner receives lead.assigned.',
      example: LEAD_EXAMPLE,
    },
    get: { summary: 'Get a lead with its history' },
  }),
  '/leads/{leadId}/actions': {
    post: leads.update(
      'Accept or decline a lead (partner), or reassign a declined or expired one (publisher)',
      'actOnLead',
      LEAD,
      ok('The lead after the step.', ref('Lead')),
      body(ref('LeadAction'), { action: 'accept' }),
    ),
  },
  '/leads/{leadId}/convert': {
    post: leads.mutation(
      'Convert an accepted lead into a deal registration (partner)',
      'convertLead',
      [IDEMPOTENCY, LEAD],
      { '201': ok('The lead (converted) and the registered deal.', ref('LeadConversion')) },
      {
        requestBody: body(ref('LeadConvert'), {
          lines: DEAL_EXAMPLE.lines,
          amount: '7960.00',
          currency: 'EUR',
          expectedCloseDate: '2027-01-31',
        }),
      },
    ),
  },
}

const actionEnum = {
  type: 'string',
  enum: DEAL_ACTIONS.filter((a) => !['submit', 'expire', 'release', 'remind'].includes(a)),
}
const step = object(['version', 'action', 'from', 'to', 'at', 'actor'], {
  version: { type: 'integer' },
  action: { type: 'string', enum: [...DEAL_ACTIONS] },
  from: { type: ['string', 'null'] },
  to: { type: 'string' },
  at: dateTime,
  actor: { type: 'string', enum: ['partner', 'publisher', 'platform'] },
  via: { type: 'string', enum: ['api', 'inbound', 'platform'] },
  reason: { type: ['string', 'null'] },
})

/** What a deal and a lead both are: one partner's, with one publisher, in a state of its workflow, versioned. */
const workflowRecord = (idSchema: Record<string, unknown>, states: readonly string[]) => ({
  id: idSchema,
  manufacturerId: orgId,
  partnerId: orgId,
  state: { type: 'string', enum: [...states] },
  version: { type: 'integer' },
})
const dealRecord = workflowRecord({ type: 'string', format: 'uuid' }, DEAL_STATES)
const leadRecord = workflowRecord(id('lead'), LEAD_STATES)

export const dealSchemas = {
  DealCreate: closed(['manufacturerId', 'endCustomer', 'lines', 'amount', 'currency', 'expectedCloseDate'], {
    manufacturerId: { ...orgId, description: 'The publisher the deal is registered with.' },
    partnerId: { ...orgId, description: 'Required with an admin key.' },
    ...content,
  }),
  DealAction: closed(['action'], {
    action: actionEnum,
    reason: { type: 'string', maxLength: 1000, description: 'Told to the partner (decisionReason).' },
    changes: {
      type: 'object',
      additionalProperties: false,
      properties: content,
      description: 'resubmit: what the partner changes before submitting again.',
    },
  }),
  Deal: object(
    [
      ...Object.keys(dealRecord),
      'endCustomer',
      'lines',
      'amount',
      'currency',
      'expectedCloseDate',
      'conflict',
      'allowedActions',
      'registeredAt',
      'updatedAt',
    ],
    {
      ...dealRecord,
      ...content,
      protectionExpiresAt: nullableDateTime,
      decisionReason: { type: ['string', 'null'] },
      leadId: { type: ['string', 'null'] },
      conflict: {
        type: 'boolean',
        description: 'Another registration claims this customer and a product (the partner learns no more).',
      },
      conflictsWith: {
        type: 'array',
        items: { type: 'string' },
        description: 'The conflicting registrations: shown to the publisher and admins only.',
      },
      allowedActions: { type: 'array', items: { type: 'string' }, description: 'What the caller may do now.' },
      registeredAt: dateTime,
      updatedAt: dateTime,
      history: { type: 'array', items: step, description: 'Every step, oldest first (GET /deals/{dealId} only).' },
    },
  ),
  LeadCreate: closed(['partnerId', 'company', 'productInterest'], {
    partnerId: orgId,
    manufacturerId: { ...orgId, description: 'Required with an admin key.' },
    company: closed(['name', 'country'], {
      name: displayName(),
      domain: { type: ['string', 'null'], maxLength: 253 },
      country,
    }),
    contact: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: displayName(),
        email: { type: ['string', 'null'], maxLength: 320 },
        phone: { type: ['string', 'null'], maxLength: 50 },
      },
    },
    productInterest: {
      type: 'array',
      minItems: 1,
      maxItems: 200,
      items: { type: 'string', minLength: 1, maxLength: 200 },
    },
    acceptBy: {
      ...dateTime,
      description: "Deadline of the partner's answer (default: DEALS_LEAD_ACCEPT_HOURS from now).",
    },
  }),
  LeadAction: {
    ...closed(['action'], {
      action: { type: 'string', enum: ['accept', 'decline', 'reassign'] },
      reason: { type: 'string', maxLength: 1000 },
      partnerId: { ...orgId, description: 'reassign (required): the partner to assign it to.' },
      acceptBy: { ...dateTime, description: 'reassign: the new deadline.' },
    }),
    // a reassignment names its partner: in the schema (it was a 422 the document did not foretell)
    if: { properties: { action: { const: 'reassign' } } },
    then: { required: ['partnerId'] },
  },
  LeadConvert: closed(['lines', 'amount', 'currency', 'expectedCloseDate'], content),
  Lead: object([...Object.keys(leadRecord), 'company', 'productInterest', 'acceptBy', 'createdAt', 'updatedAt'], {
    ...leadRecord,
    company: { type: 'object' },
    contact: { type: ['object', 'null'] },
    productInterest: { type: 'array', items: { type: 'string' } },
    acceptBy: dateTime,
    reason: { type: ['string', 'null'] },
    dealId: { type: ['string', 'null'] },
    createdAt: dateTime,
    updatedAt: dateTime,
    history: { type: 'array', items: { type: 'object' } },
  }),
  LeadConversion: { type: 'object', required: ['lead', 'deal'], properties: { lead: ref('Lead'), deal: ref('Deal') } },
}
