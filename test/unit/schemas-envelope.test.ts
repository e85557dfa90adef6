import { expect } from 'chai'
import { envelope, fromHeaders, isTraceparent, isUuidV7, toHeaders, uuidv7, HEADER } from '../../schemas/headers.ts'
import { bytesToDecimal, decimalToBytes } from '../../schemas/serde/decimal.ts'
import { DataError } from '../../common/errors.ts'

describe('event envelope headers', () => {
  it('uuidv7: version 7, RFC 9562 variant, time-ordered even within one millisecond', () => {
    // ids of this process never go back in time (a time at or before the last id's borrows the last
    // id's millisecond), so the fixed time is one no earlier id has reached: 2 ms ahead of the clock
    const t = Date.now() + 2
    const ids = Array.from({ length: 500 }, () => uuidv7(t))
    for (const id of ids) expect(isUuidV7(id), id).to.equal(true)
    expect([...ids].sort()).to.deep.equal(ids)
    expect(new Set(ids).size).to.equal(ids.length)
    expect(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16)).to.equal(t)
    expect(
      parseInt(
        uuidv7(t + 1)
          .replace(/-/g, '')
          .slice(0, 12),
        16,
      ),
    ).to.equal(t + 1)
  })

  it('uuidv7 from the clock: unique, ordered, the random bits fresh in each new millisecond', () => {
    const ids: string[] = []
    const start = Date.now()
    while (Date.now() - start < 30 || ids.length < 5000) ids.push(uuidv7())
    for (const id of ids) expect(isUuidV7(id), id).to.equal(true)
    expect(new Set(ids).size).to.equal(ids.length)
    expect([...ids].sort()).to.deep.equal(ids)
    // the first id of each millisecond draws new random bits: across milliseconds they are not a counter
    const firsts = ids
      .filter((id, i) => i === 0 || id.slice(0, 13) !== ids[i - 1]!.slice(0, 13))
      .map((id) => id.replace(/-/g, '').slice(13))
    expect(firsts.length).to.be.greaterThan(3)
    expect(new Set(firsts.map((r) => r.slice(0, 4))).size, 'leading random digits vary').to.be.greaterThan(1)
  })

  it('round-trips through Kafka headers (as Buffers, the way consumers get them)', () => {
    const e = envelope({
      type: 'deal.approved',
      source: '/manufacturers/acme/crm',
      schemaSubject: 'deals.registrations-value',
      schemaVersion: 3,
    })
    expect(isTraceparent(e.traceparent)).to.equal(true)
    const asBuffers = Object.fromEntries(Object.entries(toHeaders(e)).map(([k, v]) => [k, Buffer.from(String(v))]))
    expect(fromHeaders(asBuffers)).to.deep.equal(e)
    expect(asBuffers[HEADER.specVersion]!.toString()).to.equal('1.0')
  })

  it('a missing or malformed header is a DataError naming it', () => {
    const h = toHeaders(envelope({ type: 't', source: '/s', schemaSubject: 's', schemaVersion: 1 }))
    for (const [name, bad] of [
      [HEADER.id, undefined],
      [HEADER.id, 'not-a-uuid'],
      [HEADER.traceparent, '00-00000000000000000000000000000000-0000000000000000-01'],
      [HEADER.time, 'yesterday'],
      [HEADER.schemaVersion, '0'],
    ] as const) {
      const copy = { ...h, [name]: bad }
      expect(() => fromHeaders(copy), `${name}=${bad}`).to.throw(DataError, name)
    }
  })
})

describe('decimal bytes', () => {
  it("round-trips exact decimals through two's complement big-endian bytes", () => {
    for (const [v, scale, hex] of [
      ['0.00', 2, '00'],
      ['1.27', 2, '7f'],
      ['1.28', 2, '0080'],
      ['-1.28', 2, '80'],
      ['-1.29', 2, 'ff7f'],
      ['12345678901234.5678', 4, null],
      ['-0.01', 2, 'ff'],
    ] as const) {
      const b = decimalToBytes(v, scale)
      if (hex) expect(b.toString('hex'), v).to.equal(hex)
      expect(bytesToDecimal(b, scale)).to.equal(v)
    }
    expect(bytesToDecimal(decimalToBytes('5', 2), 2)).to.equal('5.00')
    expect(() => decimalToBytes('1.234', 2)).to.throw(DataError)
    expect(() => decimalToBytes('abc', 2)).to.throw(DataError)
  })
})
