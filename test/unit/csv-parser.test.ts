import { expect } from 'chai'
import { CsvParser, type CsvRow } from '../../producers/csv-drop/csv-parser.ts'
import { createConverter } from '../../connectors/source/json-avro.ts'
import { contractSchema } from '../../schemas/contracts.ts'

function parseChunked(buf: Buffer, size: number, opts = {}): CsvRow[] {
  const p = new CsvParser(opts)
  const rows: CsvRow[] = []
  for (let i = 0; i < buf.length; i += size) rows.push(...p.push(buf.subarray(i, i + size)))
  rows.push(...p.end())
  return rows
}

describe('csv parser (RFC 4180, streaming over bytes)', () => {
  const text =
    '\uFEFFsku,name,qty\r\nA-1,"Bolt, M6",10\r\n\r\nB-2,"He said ""hi""",20\r\nC-3,"two\r\nlines",30\r\nD-4,Ä€,40'
  const buf = Buffer.from(text, 'utf8')

  it(
    'handles BOM, CRLF, quoted delimiters, escaped quotes, line breaks in fields, ' + 'blank lines, no final newline',
    () => {
      const rows = parseChunked(buf, buf.length)
      expect(rows.map((r) => r.fields)).to.deep.equal([
        ['sku', 'name', 'qty'],
        ['A-1', 'Bolt, M6', '10'],
        ['B-2', 'He said "hi"', '20'],
        ['C-3', 'two\r\nlines', '30'],
        ['D-4', 'Ä€', '40'],
      ])
      expect(rows.map((r) => r.line)).to.deep.equal([1, 2, 4, 5, 7])
      expect(rows.at(-1)!.end).to.equal(buf.length)
      // every row's end is the byte offset where the next row (or blank line) starts
      expect(buf.subarray(rows[1]!.end).toString().startsWith('\r\nB-2')).to.equal(true)
    },
  )

  it('gives the same rows, lines and offsets for every chunk size', () => {
    const whole = parseChunked(buf, buf.length)
    for (let size = 1; size < buf.length; size++) expect(parseChunked(buf, size), `chunk ${size}`).to.deep.equal(whole)
  })

  it('resumes at a byte offset with the right line numbers', () => {
    const whole = parseChunked(buf, buf.length)
    const from = whole[2]!.end
    const rest = parseChunked(buf.subarray(from), 7, { offset: from, line: whole[3]!.line })
    expect(rest).to.deep.equal(whole.slice(3))
  })

  it('reports malformed rows and goes on', () => {
    const rows = parseChunked(Buffer.from('a,b\n"x"y,1\nok,2\n"open,3'), 3)
    expect(rows.map((r) => [r.line, r.error ?? null])).to.deep.equal([
      [1, null],
      [2, 'unexpected text after a closing quote in field 1'],
      [3, null],
      [4, 'unclosed quoted field'],
    ])
  })
})

describe('json-avro converter', () => {
  const conv = createConverter(contractSchema('inventory-level'))
  it('names every fault by JSON Pointer', () => {
    const r = conv.convert(
      {
        manufacturerId: 'm',
        sku: 1,
        locationId: 'L',
        unitOfMeasure: 'EA',
        onHand: 1.5,
        reserved: 0,
        available: 0,
        incoming: [{ quantity: 'x', expectedDate: 'soon' }],
        sequence: 1,
        occurredAt: 'yesterday',
        extra: true,
      },
      '/7',
    )
    expect(r.faults.map((f) => f.path).sort()).to.deep.equal([
      '/7/extra',
      '/7/incoming/0/expectedDate',
      '/7/incoming/0/quantity',
      '/7/occurredAt',
      '/7/onHand',
      '/7/sku',
    ])
  })
  it('reads CSV cells in strings mode: numbers, empty as null, dates', () => {
    const c = createConverter(contractSchema('inventory-level'), { strings: true })
    const r = c.convert({
      manufacturerId: 'm',
      sku: 'S',
      gtin: '',
      locationId: 'L',
      unitOfMeasure: 'EA',
      onHand: '12',
      reserved: '2',
      available: '10',
      safetyStock: '',
      sequence: '7',
      occurredAt: '2026-01-01T00:00:00Z',
    })
    expect(r.faults).to.deep.equal([])
    expect(r.value).to.include({
      onHand: 12,
      gtin: null,
      safetyStock: null,
      sequence: 7,
      occurredAt: Date.parse('2026-01-01T00:00:00Z'),
      locationType: 'WAREHOUSE',
    })
  })
  it(
    'fills defaults (a fresh array per value), names missing fields and escapes ' +
      'unknown keys, the same on every call',
    () => {
      const base = {
        manufacturerId: 'm',
        sku: 'S',
        locationId: 'L',
        unitOfMeasure: 'EA',
        onHand: 1,
        reserved: 0,
        available: 1,
        sequence: 1,
        occurredAt: 0,
      }
      const a = conv.convert(base).value as {
        incoming: unknown[]
        gtin: unknown
        locationType: string
        safetyStock: unknown
      }
      const b = conv.convert(base).value as { incoming: unknown[] }
      expect(a).to.include({ gtin: null, locationType: 'WAREHOUSE', safetyStock: null })
      expect(a.incoming).to.deep.equal([])
      a.incoming.push(1)
      expect(b.incoming).to.deep.equal([]) // not one shared default array
      for (let i = 0; i < 3; i++) {
        const r = conv.convert({ sku: 'S', 'a/b~c': 1, incoming: [{ quantity: 1, expectedDate: 3 }, {}] }, `/${i}`)
        expect(r.value).to.equal(undefined)
        expect(r.faults.map((f) => `${f.path} ${f.message}`).sort()).to.deep.equal(
          [
            `/${i}/a~1b~0c is not a field of the schema`,
            `/${i}/available is required`,
            `/${i}/incoming/1/expectedDate is required`,
            `/${i}/incoming/1/quantity is required`,
            `/${i}/locationId is required`,
            `/${i}/manufacturerId is required`,
            `/${i}/occurredAt is required`,
            `/${i}/onHand is required`,
            `/${i}/reserved is required`,
            `/${i}/sequence is required`,
            `/${i}/unitOfMeasure is required`,
          ].sort(),
        )
      }
    },
  )
})
