import { expect } from 'chai'
// (No outbox entry here: uuidv7 keeps process-wide monotonic state that schemas-envelope.test.ts relies on.)
import { partnerProfileValue } from '../../control-plane/index.ts'

const org = { _id: 'org_65f000000000000000000001', name: 'Northwind' }
const at = new Date('2026-11-24T10:00:00Z')

describe('partner profile against the partner-profile contract', () => {
  it('fills in what the platform owns and derives, and converts dates', () => {
    const r = partnerProfileValue(
      org,
      { tier: 'GOLD', certifications: [{ code: 'C', name: 'Cert', issuedOn: '2025-01-02' }] },
      7,
      at,
    )
    expect(r.errors).to.deep.equal([])
    expect(r.value).to.include({
      partnerId: org._id,
      legalName: 'Northwind',
      partnerType: 'OTHER',
      tier: 'GOLD',
      status: 'UNKNOWN',
      headquartersCountry: 'ZZ',
      sequence: 7,
      occurredAt: at.getTime(),
      taxId: null,
    })
    expect((r.value!.certifications as Array<Record<string, unknown>>)[0]).to.deep.equal({
      code: 'C',
      name: 'Cert',
      issuedOn: Date.parse('2025-01-02T00:00:00Z') / 86_400_000,
      expiresOn: null,
    })
  })

  it('names every field at fault as profile.<path>, including the ones the platform sets', () => {
    const r = partnerProfileValue(
      org,
      { status: 'GONE', regions: ['DE', 3], contacts: [{ role: 'x', name: 'y' }], sequence: 1, extra: true },
      1,
      at,
    )
    expect(r.value).to.equal(undefined)
    expect(r.errors.map((e) => e.field)).to.have.members([
      'profile.sequence',
      'profile.status',
      'profile.regions.1',
      'profile.contacts.0.email',
      'profile.extra',
    ])
  })
})
