import { expect } from 'chai'
import { createConverter } from '../../connectors/source/json-avro.ts'

describe('JSON to Avro values (connectors/source/json-avro.ts)', () => {
  const times = createConverter({
    type: 'record',
    name: 'R',
    fields: [
      { name: 't', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'd', type: { type: 'int', logicalType: 'date' } },
    ],
  })

  it(
    'reads timestamps and dates exactly as Date.parse does, in every form (the ' + 'fast path and the fallback agree)',
    () => {
      let seed = 7
      const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
      const pad = (x: number, n: number) => String(x).padStart(n, '0')
      let checked = 0
      for (let i = 0; i < 20_000; i++) {
        const y = [1970, 2026, 1, 99, 100, 9999, 2000][rnd(7)]!
        const date = `${pad(y, 4)}-${pad(rnd(14), 2)}-${pad(rnd(33), 2)}`
        const fraction = ['', '.5', '.12', '.123', '.1234', '.', '.x'][rnd(7)]
        const zone = ['Z', 'Z', 'z', '+01:00', ''][rnd(5)]
        const t = `${date}T${pad(rnd(26), 2)}:${pad(rnd(62), 2)}:${pad(rnd(62), 2)}${fraction}${zone}`
        const expectedT = Date.parse(t)
        const expectedD = Date.parse(`${date}T00:00:00Z`)
        const r = times.convert({ t, d: date })
        if (Number.isNaN(expectedT) || Number.isNaN(expectedD)) expect(r.faults, `${t} ${date}`).to.not.be.empty
        else expect(r, `${t} ${date}`).to.deep.equal({ value: { t: expectedT, d: expectedD / 86_400_000 }, faults: [] })
        checked++
      }
      expect(checked).to.equal(20_000)
    },
  )

  it('names every fault by its JSON Pointer: missing, mistyped, unknown fields, nested items', () => {
    const c = createConverter({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'id', type: 'string' },
        { name: 'n', type: ['null', 'long'], default: null },
        { name: 'kind', type: { type: 'enum', name: 'K', symbols: ['A', 'B'] }, default: 'A' },
        {
          name: 'items',
          type: { type: 'array', items: { type: 'record', name: 'I', fields: [{ name: 'q', type: 'int' }] } },
          default: [],
        },
      ],
    })
    expect(c.convert({ id: 'x' })).to.deep.equal({ value: { id: 'x', n: null, kind: 'A', items: [] }, faults: [] })
    const r = c.convert({ n: 1.5, kind: 'C', items: [{ q: 1 }, { q: 2 ** 40, z: 1 }], 'a/b': 1 }, '/3')
    expect(r.value).to.equal(undefined)
    expect(r.faults).to.deep.equal([
      { path: '/3/id', message: 'is required' },
      { path: '/3/n', message: 'must be an integer, got 1.5' },
      { path: '/3/kind', message: 'must be one of A, B, got "C"' },
      { path: '/3/items/1/q', message: 'is out of the 32-bit integer range: 1099511627776' },
      { path: '/3/items/1/z', message: 'is not a field of the schema' },
      { path: '/3/a~1b', message: 'is not a field of the schema' },
    ])
  })

  it('a default that is an object is a fresh copy for each event', () => {
    const c = createConverter({
      type: 'record',
      name: 'E',
      fields: [{ name: 'tags', type: { type: 'array', items: 'string' }, default: [] }],
    })
    const a = c.convert({}).value as { tags: string[] }
    a.tags.push('changed')
    expect(c.convert({}).value).to.deep.equal({ tags: [] })
  })

  it('returns the event itself when nothing changes, and copies (never mutates) it when something does', () => {
    const c = createConverter({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'id', type: 'string' },
        { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
        { name: 'note', type: ['null', 'string'], default: null },
        {
          name: 'items',
          type: {
            type: 'array',
            items: {
              type: 'record',
              name: 'I',
              fields: [
                { name: 'q', type: 'int' },
                { name: 'when', type: ['null', { type: 'long', logicalType: 'timestamp-millis' }], default: null },
              ],
            },
          },
        },
      ],
    })
    const complete = {
      id: 'a',
      at: 5,
      note: 'n',
      items: [
        { q: 1, when: null },
        { q: 2, when: 7 },
      ],
    }
    const same = c.convert(complete)
    expect(same.faults).to.deep.equal([])
    expect(same.value, 'nothing to convert: no copy').to.equal(complete)

    // a logical form in the third item, and a default in the first field after id
    const input = {
      id: 'b',
      at: '2026-01-01T00:00:00Z',
      items: [
        { q: 1, when: null },
        { q: 2, when: 7 },
        { q: 3, when: '2026-01-02T00:00:00Z' },
      ],
    }
    const before = structuredClone(input)
    const r = c.convert(input)
    expect(r.faults).to.deep.equal([])
    expect(r.value).to.deep.equal({
      id: 'b',
      at: Date.UTC(2026, 0, 1),
      note: null,
      items: [
        { q: 1, when: null },
        { q: 2, when: 7 },
        { q: 3, when: Date.UTC(2026, 0, 2) },
      ],
    })
    expect(input, 'the input is left as it was').to.deep.equal(before)
    const items = (r.value as { items: unknown[] }).items
    expect(items).to.not.equal(input.items)
    expect(items[0], 'unchanged items are shared, not copied').to.equal(input.items[0])
    expect(items[2]).to.not.equal(input.items[2])
  })

  it('inPlace: a caller-owned row is converted into itself (CSV), with the same result as a copy', () => {
    const schema = {
      type: 'record',
      name: 'R',
      fields: [
        { name: 'sku', type: 'string' },
        { name: 'n', type: 'int' },
        { name: 'note', type: ['null', 'string'], default: null },
      ],
    }
    const row = { sku: 'A', n: '12', note: '' }
    const copy = createConverter(schema, { strings: true }).convert({ ...row })
    const r = createConverter(schema, { strings: true, inPlace: true }).convert(row)
    expect(r).to.deep.equal(copy)
    expect(r.value).to.equal(row)
    expect(row).to.deep.equal({ sku: 'A', n: 12, note: null })

    // a nested object (e.g. a constant shared by every row) is copied, not converted into
    const nested = createConverter(
      {
        type: 'record',
        name: 'O',
        fields: [{ name: 'inner', type: { type: 'record', name: 'In', fields: [{ name: 'q', type: 'int' }] } }],
      },
      { strings: true, inPlace: true },
    )
    const shared = { q: '7' }
    const out = nested.convert({ inner: shared })
    expect(out.value).to.deep.equal({ inner: { q: 7 } })
    expect(shared, 'the shared nested object is left as it was').to.deep.equal({ q: '7' })
  })

  it('strings: integer cells read as before the fast path (digits, sign, spaces, exponents, hex, overflow)', () => {
    const c = createConverter({ type: 'record', name: 'R', fields: [{ name: 'n', type: 'long' }] }, { strings: true })
    let seed = 11
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n
    const parts = [
      '0',
      '7',
      '12',
      '-',
      '+',
      ' ',
      '1e3',
      '0x10',
      '.5',
      '9007199254740993',
      '123456789012345',
      '1234567890123456',
      '',
    ]
    for (let i = 0; i < 5000; i++) {
      const cell = Array.from({ length: 1 + rnd(3) }, () => parts[rnd(parts.length)]).join('')
      const reference =
        /^\s*-?\d+\s*$/.test(cell) &&
        Number.isInteger(Number(cell)) &&
        Math.abs(Number(cell)) <= Number.MAX_SAFE_INTEGER
          ? Number(cell)
          : undefined
      const r = c.convert({ n: cell })
      if (reference === undefined) expect(r.faults, JSON.stringify(cell)).to.not.be.empty
      else expect(r, JSON.stringify(cell)).to.deep.equal({ value: { n: reference }, faults: [] })
    }
  })
})
