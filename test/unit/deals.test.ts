import { expect } from 'chai'
import { decide } from '../../connectors/sink/entitlement.ts'
import {
  allowedActions,
  customerKey,
  DEAL_STATES,
  nextState,
  normalizedName,
  registrableDomain,
  TransitionConflictError,
} from '../../control-plane/deals/index.ts'
import { dealContentFaults } from '../../control-plane/deals/contract.ts'
import type { GrantDoc } from '../../control-plane/types.ts'

const grant = (partnerId: string, eventTypes: string[]): GrantDoc => ({
  _id: `grt_${partnerId}`,
  publisherId: 'pub1',
  partnerId,
  entitlements: eventTypes.map((eventType) => ({ eventType })),
  eventTypes,
  status: 'active',
  acceptedEventTypes: eventTypes,
  createdAt: new Date(),
  updatedAt: new Date(),
  version: 1,
})

describe('deals: customer keys, the state machine, the audience rule', () => {
  it('registrable domains: subdomains, URLs, multi-label public suffixes', () => {
    expect(registrableDomain('example.com')).to.equal('example.com')
    expect(registrableDomain('Shop.EU.Example.com')).to.equal('example.com')
    expect(registrableDomain('https://www.contoso.co.uk/about')).to.equal('contoso.co.uk')
    expect(registrableDomain('buy.fabrikam.com.au')).to.equal('fabrikam.com.au')
    expect(registrableDomain('co.uk')).to.equal(undefined)
    expect(registrableDomain('not a domain')).to.equal(undefined)
    expect(customerKey({ name: 'X', domain: 'a.contoso.co.uk', country: 'GB' })).to.equal(
      customerKey({ name: 'Y', domain: 'contoso.co.uk', country: 'DE' }),
    )
    expect(customerKey({ name: 'X', domain: 'contoso.co.uk', country: 'GB' })).to.not.equal(
      customerKey({ name: 'X', domain: 'other.co.uk', country: 'GB' }),
    )
  })

  it('without a domain: the normalized name (case, accents, punctuation, legal form) and the country', () => {
    expect(normalizedName('Société Générale S.A.')).to.equal('societe generale')
    expect(normalizedName('Contoso GmbH & Co. KG')).to.equal('contoso')
    expect(customerKey({ name: 'Contoso GmbH', country: 'de' })).to.equal(
      customerKey({ name: 'contoso', domain: null, country: 'DE' }),
    )
    expect(customerKey({ name: 'Contoso', country: 'DE' })).to.not.equal(
      customerKey({ name: 'Contoso', country: 'AT' }),
    )
  })

  it('the state machine refuses an illegal step naming the state and the allowed actions, per actor', () => {
    expect(nextState('d', 'submitted', 'approve', 'publisher')).to.equal('approved')
    expect(() => nextState('d', 'approved', 'approve', 'publisher')).to.throw(
      TransitionConflictError,
      /approved.*allowed actions: won, lost/,
    )
    expect(() => nextState('d', 'submitted', 'approve', 'partner')).to.throw(
      TransitionConflictError,
      /allowed actions: cancel/,
    )
    for (const s of ['rejected', 'won', 'lost', 'expired', 'cancelled'] as const)
      expect(allowedActions(s)).to.deep.equal([])
    expect(DEAL_STATES).to.have.length(10)
  })

  it('checks a registration against the deal contract, naming the field', () => {
    const ok = {
      partnerReference: null,
      endCustomer: { name: 'A', domain: null, country: 'DE', industry: null },
      lines: [{ sku: 'S', quantity: 1, unitPrice: '1.00' }],
      amount: '1.00',
      currency: 'EUR',
      expectedCloseDate: '2027-01-01',
    }
    expect(dealContentFaults(ok, 'pub1', 'org_a')).to.deep.equal([])
    const faults = dealContentFaults(
      { ...ok, amount: 'lots', lines: [{ sku: 'S', quantity: 1.5, unitPrice: null }] },
      'pub1',
      'org_a',
    ).map((f) => f.field)
    expect(faults).to.include.members(['amount', 'lines[0].quantity'])
  })

  it("a deal or lead event reaches only the partner it names, whatever the grants; the publisher's own too", () => {
    const types = ['deal.registered', 'lead.assigned']
    const grants = [grant('org_a', types), grant('org_b', types)]
    const deal = {
      value: { manufacturerId: 'pub1', partnerId: 'org_a', dealId: 'd1' },
      headers: { ce_publisherid: 'pub1' },
      eventType: 'deal.registered',
      key: null,
    }
    expect(decide(deal, { partnerId: 'org_a' }, grants).deliver).to.equal(true)
    const other = decide(deal, { partnerId: 'org_b' }, grants)
    expect(other.deliver).to.equal(false)
    expect(other.deliver === false && other.reason).to.include('another partner')
    const lead = {
      ...deal,
      value: { manufacturerId: 'pub1', partnerId: 'org_b', leadId: 'l1' },
      eventType: 'lead.assigned',
    }
    expect(decide(lead, { partnerId: 'org_a' }, grants).deliver).to.equal(false)
    expect(decide(lead, { partnerId: 'org_b' }, grants).deliver).to.equal(true)
    // a tombstone of a deal names no addressee: it reaches no partner, only the publisher's own subscription
    const tombstone = { ...deal, value: null }
    expect(decide(tombstone, { partnerId: 'org_a' }, grants).deliver).to.equal(false)
    expect(decide(tombstone, { partnerId: 'pub1' }, []).deliver).to.equal(true)
    // the publisher's CRM: its own records, no grant needed; another publisher's: nothing
    expect(decide(deal, { partnerId: 'pub1' }, []).deliver).to.equal(true)
    expect(
      decide(
        { ...deal, headers: { ce_publisherid: 'pub2' }, value: { ...deal.value, manufacturerId: 'pub2' } },
        { partnerId: 'pub1' },
        [],
      ).deliver,
    ).to.equal(false)
    // inventory is no audience topic: grants alone decide, as before
    const level = {
      value: { manufacturerId: 'pub1', sku: 'S' },
      headers: { ce_publisherid: 'pub1' },
      eventType: 'inventory.level.changed',
      key: null,
    }
    expect(decide(level, { partnerId: 'org_b' }, [grant('org_b', ['inventory.level.changed'])]).deliver).to.equal(true)
  })
})
