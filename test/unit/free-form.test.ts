import { expect } from 'chai'
import { freeFormErrors, MAX_FREE_FORM_DEPTH } from '../../control-plane/free-form.ts'

describe('free-form JSON (what every supported store keeps as sent)', () => {
  it('accepts objects, arrays of objects and scalars, empty names, and text with surrogate pairs', () => {
    expect(freeFormErrors({ '': 1, a: [{ b: [1, 'x'] }, null, true], 'ü 𝕏': { c: '😀' } }, 'profile')).to.deep.equal([])
  })

  it('names each field that a store refuses or would change', () => {
    const fields = (v: unknown) => freeFormErrors(v, 'p').map((e) => e.field)
    expect(fields({ a: [[1]] })).to.deep.equal(['p.a[0]'])
    expect(fields({ a: [{ b: [1, [2]] }] })).to.deep.equal(['p.a[0].b[1]'])
    expect(fields({ $x: 1, y: { $z: 2 } })).to.deep.equal(['p.$x', 'p.y.$z'])
    expect(fields({ 'a.b': 1 })).to.deep.equal(['p.a.b'])
    expect(fields({ 'a\u0000': 1 })).to.deep.equal(['p.a\u0000'])
    expect(fields({ s: 'a\ud800', t: '\udc00b', '\ud83d': 1 })).to.deep.equal(['p.s', 'p.t', 'p.\ud83d'])
  })

  it(`refuses nesting deeper than ${MAX_FREE_FORM_DEPTH} levels, and stops after 10 errors`, () => {
    let deep: unknown = 1
    for (let i = 0; i < MAX_FREE_FORM_DEPTH; i++) deep = { d: deep }
    expect(freeFormErrors(deep, 'p')).to.deep.equal([])
    expect(freeFormErrors({ d: deep }, 'p')).to.have.length(1)
    expect(freeFormErrors(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`$${i}`, i])), 'p')).to.have.length(
      10,
    )
  })
})
