import { expect } from 'chai'
import {
  decide,
  intersectFields,
  keyManufacturer,
  matchesFilter,
  project,
  publisherOf,
} from '../../connectors/sink/entitlement.ts'
import type { GrantDoc } from '../../control-plane/types.ts'

/** An accepted grant (the partner accepted every event type), unless `over` says otherwise. */
const grant = (
  publisherId: string,
  partnerId: string,
  entitlements: GrantDoc['entitlements'],
  over: Partial<GrantDoc> = {},
): GrantDoc => ({
  _id: `grt_${publisherId}_${partnerId}`,
  publisherId,
  partnerId,
  entitlements,
  eventTypes: entitlements.map((e) => e.eventType),
  status: 'active',
  acceptedEventTypes: entitlements.map((e) => e.eventType),
  acceptedAt: new Date(),
  ...over,
  createdAt: new Date(),
  updatedAt: new Date(),
  version: 1,
})

const level = (over: Record<string, unknown> = {}) => ({
  manufacturerId: 'pub1',
  sku: 'S1',
  locationId: 'WH1',
  onHand: 10,
  reserved: 2,
  available: 8,
  incoming: [{ quantity: 5, expectedDate: 1, reference: 'PO-1' }],
  safetyStock: null,
  ...over,
})
/** A record as the platform produces it: stamped with its publisher (pub1 unless the headers say otherwise). */
const rec = (
  value: unknown,
  headers: Record<string, string> = { ce_publisherid: 'pub1' },
  eventType = 'inventory.level.changed',
  key: string | null = null,
) => ({ value, headers, eventType, key })

describe('sink entitlement: one record, one subscription, the partner grants', () => {
  it(
    'ties a record to the publisher the platform stamped (ce_publisherid); a ' +
      'payload or key naming another, or no stamp, ties it to none',
    () => {
      expect(publisherOf(rec(level()))).to.equal('pub1')
      expect(publisherOf(rec({ partnerId: 'x' }, { ce_publisherid: 'pub2' }))).to.equal('pub2')
      // the payload only claims: another manufacturerId than the stamp, or no stamp at all, is believed by nobody
      expect(publisherOf(rec(level(), { ce_publisherid: 'pub2' }))).to.equal(null)
      expect(publisherOf(rec(level(), {}))).to.equal(null)
      expect(publisherOf(rec({ partnerId: 'x' }, {}))).to.equal(null)
      // the key carries the owner too (contract version 2); a version-1 key (no manufacturerId) names nobody
      expect(
        publisherOf(rec(level(), undefined, undefined, '{"manufacturerId":"pub1","sku":"S1","locationId":"WH1"}')),
      ).to.equal('pub1')
      expect(
        publisherOf(rec(level(), undefined, undefined, '{"manufacturerId":"pub2","sku":"S1","locationId":"WH1"}')),
      ).to.equal(null)
      expect(publisherOf(rec(level(), undefined, undefined, '{"sku":"S1","locationId":"WH1"}'))).to.equal('pub1')
      expect(keyManufacturer('{"manufacturerId":"","sku":"S1"}')).to.equal(undefined)
      expect(keyManufacturer('{"manufacturerId":"a\\"b","sku":"S1"}')).to.equal('a"b')
    },
  )

  it(
    'an offered grant covers nothing until the partner accepts; a type added ' + 'after acceptance waits for it again',
    () => {
      const sub = { partnerId: 'org_a' }
      const ents = [{ eventType: 'inventory.level.changed' }, { eventType: 'deal.registered' }]
      expect(
        decide(rec(level()), sub, [grant('pub1', 'org_a', ents, { status: 'offered', acceptedEventTypes: [] })])
          .deliver,
      ).to.equal(false)
      const partly = [grant('pub1', 'org_a', ents, { acceptedEventTypes: ['deal.registered'] })]
      expect(decide(rec(level()), sub, partly).deliver).to.equal(false)
      expect(
        decide(rec({ manufacturerId: 'pub1', partnerId: 'org_a' }, undefined, 'deal.registered'), sub, partly).deliver,
      ).to.equal(true)
      // a grant stored before consent existed (no status) stays in force
      const legacy = grant('pub1', 'org_a', ents)
      delete legacy.status
      delete legacy.acceptedEventTypes
      expect(decide(rec(level()), sub, [legacy]).deliver).to.equal(true)
    },
  )

  it('drops a record no grant covers: no grant, another publisher, another partner, another event type', () => {
    const sub = { partnerId: 'org_a' }
    expect(decide(rec(level()), sub, []).deliver).to.equal(false)
    expect(
      decide(rec(level()), sub, [grant('pub2', 'org_a', [{ eventType: 'inventory.level.changed' }])]).deliver,
    ).to.equal(false)
    expect(
      decide(rec(level()), sub, [grant('pub1', 'org_b', [{ eventType: 'inventory.level.changed' }])]).deliver,
    ).to.equal(false)
    expect(decide(rec(level()), sub, [grant('pub1', 'org_a', [{ eventType: 'deal.registered' }])]).deliver).to.equal(
      false,
    )
    const ok = decide(rec(level()), sub, [grant('pub1', 'org_a', [{ eventType: 'inventory.level.changed' }])])
    expect(ok).to.deep.equal({ deliver: true, value: level(), projected: false, publisherId: 'pub1' })
  })

  it(
    'a tombstone reaches a partner whose grant from its publisher (header) covers ' +
      'the event type, filters notwithstanding; without a publisher it is dropped',
    () => {
      const sub = { partnerId: 'org_a', filter: { locationId: { in: ['WH1'] } } }
      const filtered = [
        grant('pub1', 'org_a', [
          { eventType: 'inventory.level.changed', filter: { locationId: { in: ['WH9'] } }, fields: ['sku'] },
        ]),
      ]
      expect(decide(rec(null, { ce_publisherid: 'pub1' }), sub, filtered)).to.deep.equal({
        deliver: true,
        value: null,
        projected: false,
        publisherId: 'pub1',
      })
      expect(decide(rec(null, { ce_publisherid: 'pub2' }), sub, filtered).deliver).to.equal(false)
      expect(decide(rec(null, {}), sub, filtered).deliver).to.equal(false)
    },
  )

  it('row filter is grant AND subscription, whatever the subscription asks', () => {
    const g = [
      grant('pub1', 'org_a', [{ eventType: 'inventory.level.changed', filter: { sku: { in: ['S1', 'S2'] } } }]),
    ]
    expect(decide(rec(level({ sku: 'S3' })), { partnerId: 'org_a' }, g).deliver).to.equal(false)
    // a subscription asking for S3 anyway (stored before the grant narrowed) still gets nothing of S3
    expect(
      decide(rec(level({ sku: 'S3' })), { partnerId: 'org_a', filter: { sku: { in: ['S3'] } } }, g).deliver,
    ).to.equal(false)
    expect(
      decide(rec(level({ sku: 'S2' })), { partnerId: 'org_a', filter: { sku: { in: ['S1'] } } }, g).deliver,
    ).to.equal(false)
    expect(
      decide(rec(level({ sku: 'S1' })), { partnerId: 'org_a', filter: { sku: { in: ['S1'] } } }, g).deliver,
    ).to.equal(true)
  })

  it('substitutes $partnerId: own deals only', () => {
    const g = [
      grant('pub1', 'org_a', [{ eventType: 'deal.registered', filter: { partnerId: { in: ['$partnerId'] } } }]),
    ]
    const deal = (partnerId: string) =>
      rec({ manufacturerId: 'pub1', partnerId, amount: 1 }, undefined, 'deal.registered')
    expect(decide(deal('org_a'), { partnerId: 'org_a' }, g).deliver).to.equal(true)
    expect(decide(deal('org_b'), { partnerId: 'org_a' }, g).deliver).to.equal(false)
    expect(matchesFilter({ a: 1 }, { b: { in: [1] } }, 'x')).to.deep.equal({ ok: false, field: 'b' })
  })

  it('a filter through an array holds only when every element holds', () => {
    const f = { 'lines.sku': { in: ['A', 'B'] } }
    expect(matchesFilter({ lines: [{ sku: 'A' }, { sku: 'B' }] }, f, 'p').ok).to.equal(true)
    expect(matchesFilter({ lines: [{ sku: 'A' }, { sku: 'C' }] }, f, 'p').ok).to.equal(false)
    expect(matchesFilter({ lines: [] }, f, 'p').ok).to.equal(false)
  })

  it('projects the grant fields intersected with the subscription fields', () => {
    const g = [
      grant('pub1', 'org_a', [
        { eventType: 'inventory.level.changed', fields: ['sku', 'locationId', 'available', 'incoming.quantity'] },
      ]),
    ]
    const only = decide(rec(level()), { partnerId: 'org_a' }, g)
    expect(only).to.deep.equal({
      deliver: true,
      value: { sku: 'S1', locationId: 'WH1', available: 8, incoming: [{ quantity: 5 }] },
      projected: true,
      publisherId: 'pub1',
      fields: ['sku', 'locationId', 'available', 'incoming.quantity'],
    })
    // the subscription asks for onHand (outside the grant) and sku: it gets sku only
    const narrowed = decide(rec(level()), { partnerId: 'org_a', fields: ['sku', 'onHand', 'incoming'] }, g)
    expect(narrowed).to.deep.equal({
      deliver: true,
      value: { sku: 'S1', incoming: [{ quantity: 5 }] },
      projected: true,
      publisherId: 'pub1',
      fields: ['sku', 'incoming.quantity'],
    })
    // grant without fields: the subscription's own projection
    const g2 = [grant('pub1', 'org_a', [{ eventType: 'inventory.level.changed' }])]
    expect(decide(rec(level()), { partnerId: 'org_a', fields: ['sku'] }, g2)).to.deep.equal({
      deliver: true,
      value: { sku: 'S1' },
      projected: true,
      publisherId: 'pub1',
      fields: ['sku'],
    })
  })

  it('field lists and projection helpers', () => {
    expect(intersectFields(undefined, undefined)).to.equal(undefined)
    expect(intersectFields(['a'], undefined)).to.deep.equal(['a'])
    expect(intersectFields(['a.b', 'c'], ['a', 'd'])).to.deep.equal(['a.b'])
    expect(intersectFields(['a'], ['a.b.c'])).to.deep.equal(['a.b.c'])
    expect(project({ a: { b: 1, c: 2 }, d: null }, ['a.b', 'd', 'x'])).to.deep.equal({ a: { b: 1 }, d: null })
    expect(project({ a: 1 }, [])).to.deep.equal({})
  })
})

describe('pinned readers: unreadable fields and stored pins', () => {
  it('names the fields a pinned reader cannot read from a new writer', async () => {
    const { unreadableFields } = await import('../../control-plane/pinned-readers.ts')
    const avro = (await import('avsc')).default
    const v1 = avro.Type.forSchema({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'long' },
        { name: 'c', type: 'string', default: 'x' },
      ],
    })
    const v2 = avro.Type.forSchema({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'string' },
      ],
    })
    const same = avro.Type.forSchema({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'int' },
        { name: 'z', type: 'int' },
      ],
    })
    const fields = unreadableFields(v1, v2)
    expect(fields).to.have.length(1)
    expect(fields[0]).to.match(/^b: /)
    expect(unreadableFields(v1, same)).to.deep.equal([]) // int promotes to long, c has a default, z is ignored
    const dropA = avro.Type.forSchema({ type: 'record', name: 'E', fields: [{ name: 'b', type: 'long' }] })
    expect(unreadableFields(v1, dropA)).to.deep.equal([
      'a: missing from the new schema and without a default in the pinned version',
    ])
  })

  it('stores pins keyed by event type without dots, and reads them back', async () => {
    const { encodePins, pinsOf } = await import('../../control-plane/schema-pins.ts')
    const stored = encodePins({ 'inventory.level.changed': 1, 'odd%type': 2 })
    expect(Object.keys(stored).some((k) => k.includes('.'))).to.equal(false)
    expect(pinsOf({ schemaVersions: stored })).to.deep.equal({ 'inventory.level.changed': 1, 'odd%type': 2 })
    expect(pinsOf({ schemaVersions: { plain: 3 } })).to.deep.equal({ plain: 3 })
  })
})
