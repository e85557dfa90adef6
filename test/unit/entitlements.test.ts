import { expect } from 'chai'
import { checkEntitlements, checkWithinGrants, fieldAllowed } from '../../control-plane/entitlements.ts'
import type { GrantDoc } from '../../control-plane/types.ts'

const grant = (publisherId: string, entitlements: GrantDoc['entitlements']): GrantDoc => ({
  _id: `grt_${publisherId}`,
  publisherId,
  partnerId: 'org_a',
  entitlements,
  eventTypes: entitlements.map((e) => e.eventType),
  createdAt: new Date(),
  updatedAt: new Date(),
  version: 1,
})

describe('entitlements: a subscription within its grants', () => {
  const p = grant('p', [
    { eventType: 'inventory.levels', filter: { region: { in: ['EU', 'US'] } }, fields: ['sku', 'stock'] },
    { eventType: 'deals.registrations' },
  ])

  it('accepts narrowing and inheriting', () => {
    expect(checkWithinGrants({ eventTypes: ['inventory.levels'] }, [p])).to.deep.equal([])
    expect(
      checkWithinGrants(
        {
          eventTypes: ['inventory.levels'],
          filter: { region: { in: ['EU'] }, sku: { in: ['x'] } },
          fields: ['sku', 'stock.available'],
        },
        [p],
      ),
    ).to.deep.equal([])
    expect(checkWithinGrants({ eventTypes: ['deals.registrations'], fields: ['anything'] }, [p])).to.deep.equal([])
  })

  it('names each excess', () => {
    expect(checkWithinGrants({ eventTypes: ['inventory.levels', 'prices'] }, [p])).to.deep.equal([
      { field: 'eventTypes[1]', message: 'event type prices is not granted to this partner' },
    ])
    const e = checkWithinGrants(
      { eventTypes: ['inventory.levels'], filter: { region: { in: ['EU', 'APAC'] } }, fields: ['sku', 'cost'] },
      [p],
    )
    expect(e.map((x) => x.field)).to.deep.equal(['filter.region', 'fields[1]'])
    expect(e[0]!.message).to.include('"APAC"')
    expect(checkWithinGrants({ eventTypes: ['inventory.levels'] }, [])).to.have.length(1)
  })

  it('fits when any publisher granting the event type allows it', () => {
    const q = grant('q', [{ eventType: 'inventory.levels', fields: ['sku', 'stock', 'cost'] }])
    expect(checkWithinGrants({ eventTypes: ['inventory.levels'], fields: ['cost'] }, [p, q])).to.deep.equal([])
  })

  it('matches field paths by prefix at dot boundaries only', () => {
    expect(fieldAllowed('stock.available', ['stock'])).to.equal(true)
    expect(fieldAllowed('stockCost', ['stock'])).to.equal(false)
  })

  it('refuses an event type listed twice in a grant', () => {
    expect(checkEntitlements([{ eventType: 'a.b' }, { eventType: 'a.b' }])).to.deep.equal([
      { field: 'entitlements[1].eventType', message: 'event type a.b appears twice' },
    ])
  })
})
