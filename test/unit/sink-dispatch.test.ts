/**
 * The dispatch index (connectors/sink/dispatch.ts): a record goes to the subscriptions that may want
 * it, never leaving out one whose filter would let it through (checked against matchesFilter on
 * generated filters and values), and counts the ones it leaves out.
 */
import { expect } from 'chai'
import { DispatchIndex, type DispatchEntry } from '../../connectors/sink/dispatch.ts'
import { matchesFilter } from '../../connectors/sink/entitlement.ts'
import type { RowFilter } from '../../control-plane/types.ts'

const entry = (run: string, filter?: RowFilter, extra: Partial<DispatchEntry<string>> = {}): DispatchEntry<string> => ({
  run,
  filter,
  partnerId: 'org_p',
  sinkType: 'webhook',
  indexable: true,
  ...extra,
})
const select = (index: DispatchIndex<string>, value: unknown) => {
  const out: string[] = []
  const filtered: Record<string, number> = {}
  index.select(value, out, (sink, n) => (filtered[sink] = (filtered[sink] ?? 0) + n))
  return { out: out.sort(), filtered }
}

describe('sink dispatch index', () => {
  it(
    'offers a record to the subscriptions listed under its value, to every ' +
      'unindexed one, and counts the rest as filtered',
    () => {
      const index = new DispatchIndex([
        entry('a', { sku: { in: ['S1'] } }),
        entry('b', { sku: { in: ['S1', 'S2'] }, locationId: { in: ['WH1'] } }),
        entry('c', { sku: { in: ['S3'] } }, { sinkType: 'rest' }),
        entry('d'),
        entry('e', { sku: { in: ['S1'] } }, { indexable: false }), // e.g. a pinned reader: sees everything
        entry('f', { partnerId: { in: ['$partnerId'] } }),
        entry('g', { 'qty%2Elevel': { in: [5, true] } }), // a stored (encoded) dotted path, non-string values
      ])
      expect(index.indexed).to.equal(5)
      expect(select(index, { sku: 'S1', locationId: 'WH2' })).to.deep.equal({
        out: ['a', 'b', 'd', 'e'],
        filtered: { webhook: 2, rest: 1 },
      })
      expect(select(index, { sku: 'S2' }).out).to.deep.equal(['b', 'd', 'e'])
      expect(select(index, { sku: 'S9', partnerId: 'org_p' }).out).to.deep.equal(['d', 'e', 'f'])
      expect(select(index, { qty: { level: 5 } }).out).to.deep.equal(['d', 'e', 'g'])
      expect(select(index, { qty: { level: 5n } }).out, 'an Avro long compares as a number').to.deep.equal([
        'd',
        'e',
        'g',
      ])
      expect(select(index, { qty: { level: '5' } }).out, 'types are not coerced (as in matchesFilter)').to.deep.equal([
        'd',
        'e',
      ])
      expect(select(index, { sku: ['S3', 'S1'] }).out, 'an array: listed under its first value').to.deep.equal([
        'c',
        'd',
        'e',
      ])
      // no decoded value (tombstone, poison): everyone, nothing counted
      expect(select(index, null)).to.deep.equal({ out: ['a', 'b', 'c', 'd', 'e', 'f', 'g'], filtered: {} })
    },
  )

  it('never leaves out a subscription whose filter matches (random filters and values)', () => {
    let seed = 7
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
    const pick = () => [`v${rnd(6)}`, rnd(6), rnd(2) === 0][rnd(3)]!
    for (let round = 0; round < 200; round++) {
      const entries: DispatchEntry<string>[] = []
      for (let i = 0; i < 12; i++) {
        const filter: RowFilter = {}
        for (const f of ['a', 'b', 'n%2Ex'].slice(0, rnd(4)))
          filter[f] = { in: Array.from({ length: 1 + rnd(3) }, pick) }
        entries.push(entry(`s${i}`, rnd(5) === 0 ? undefined : filter, { indexable: rnd(6) !== 0 }))
      }
      const index = new DispatchIndex(entries)
      for (let j = 0; j < 20; j++) {
        const value: Record<string, unknown> = { a: rnd(4) === 0 ? [pick(), pick()] : pick(), n: { x: pick() } }
        if (rnd(3) > 0) value.b = pick()
        const { out, filtered } = select(index, value)
        const matching = entries.filter((e) => matchesFilter(value, e.filter, e.partnerId).ok).map((e) => e.run)
        expect(out, JSON.stringify({ value, filters: entries.map((e) => e.filter) })).to.include.members(matching)
        expect(new Set(out).size, 'no subscription offered twice').to.equal(out.length)
        expect(out.length + (filtered.webhook ?? 0)).to.equal(entries.length)
      }
    }
  })
})
