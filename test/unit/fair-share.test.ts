/**
 * Fair shares of an origin's connections (consumers/http/fair-share.ts): a lane alone uses every
 * slot; once another lane wants some, freed slots go to the lanes below their share first, round-robin;
 * a waiting call whose signal aborts leaves the queue.
 */
import { expect } from 'chai'
import { FairShare } from '../../consumers/http/fair-share.ts'

const O = 'http://partner.example'

describe('FairShare', () => {
  it('lets a lane alone use every connection, at once (no promise)', () => {
    const f = new FairShare(4)
    const a = {}
    for (let i = 0; i < 4; i++) expect(f.acquire(O, a)).to.equal(undefined)
    expect(f.load(O)).to.deep.equal({ running: 4, waiting: 0, lanes: 1 })
  })

  it('gives freed connections to a lane below its share before the lane that holds them all', async () => {
    const f = new FairShare(2)
    const a = {}
    const b = {}
    const granted: string[] = []
    void f.acquire(O, a) // granted at once: the first two of the two slots
    void f.acquire(O, a)
    // a queues three more calls, then b one: first come would serve b after all of a's
    const waits = [
      f.acquire(O, a)!.then(() => granted.push('a3')),
      f.acquire(O, a)!.then(() => granted.push('a4')),
      f.acquire(O, a)!.then(() => granted.push('a5')),
      f.acquire(O, b)!.then(() => granted.push('b1')),
    ]
    expect(f.load(O)).to.deep.equal({ running: 2, waiting: 4, lanes: 2 })
    f.release(O, a)
    await Promise.resolve()
    expect(granted).to.deep.equal(['b1'])
    // a holds 1 (its share), b holds 1: the next freed slot goes round-robin among the waiting lanes: a
    f.release(O, a)
    f.release(O, b)
    await Promise.resolve()
    expect(granted).to.deep.equal(['b1', 'a3', 'a4'])
    f.release(O, a)
    f.release(O, a)
    await Promise.all(waits)
    expect(granted).to.deep.equal(['b1', 'a3', 'a4', 'a5'])
  })

  it('serves waiting lanes round-robin, one call each per round', async () => {
    const f = new FairShare(1)
    const lanes = { a: {}, b: {}, c: {} }
    const granted: string[] = []
    void f.acquire(O, lanes.a) // granted at once
    const waits: Promise<unknown>[] = []
    for (const name of ['a', 'a', 'a', 'b', 'b', 'c'] as const)
      waits.push(f.acquire(O, lanes[name])!.then(() => granted.push(name)))
    let holder: object = lanes.a
    for (let i = 0; i < 6; i++) {
      f.release(O, holder)
      await Promise.resolve()
      holder = lanes[granted.at(-1) as 'a' | 'b' | 'c']
    }
    await Promise.all(waits)
    expect(granted.join(''), 'a started waiting first').to.equal('abcaba')
  })

  it('drops a waiting call whose signal aborts, with the reason, and passes its turn on', async () => {
    const f = new FairShare(1)
    const a = {}
    const ctl = new AbortController()
    const b = ctl.signal
    void f.acquire(O, a) // granted at once
    const aborted = f.acquire(O, b, ctl.signal)!.then(
      () => 'granted',
      (err: Error) => err.message,
    )
    const next = f.acquire(O, {})!.then(() => 'granted')
    ctl.abort(new Error('handed over'))
    expect(await aborted).to.equal('handed over')
    f.release(O, a)
    expect(await next).to.equal('granted')
    expect(f.load(O)).to.deep.equal({ running: 1, waiting: 0, lanes: 1 })
  })

  it('counts the active lanes as they come and go: 1,000 lanes waiting, then served and aborted', async () => {
    const f = new FairShare(4)
    const lanes = Array.from({ length: 1000 }, () => ({ lane: {}, ctl: new AbortController() }))
    const waits = lanes.map((l) => f.acquire(O, l.lane, l.ctl.signal) ?? Promise.resolve())
    for (const w of waits) w.catch(() => undefined)
    expect(f.load(O)).to.deep.equal({ running: 4, waiting: 996, lanes: 1000 })
    for (const l of lanes.slice(500)) l.ctl.abort(new Error('stopped')) // half of them leave
    expect(f.load(O)).to.deep.equal({ running: 4, waiting: 496, lanes: 500 })
    for (const l of lanes.slice(0, 500)) {
      await waits[lanes.indexOf(l)]
      f.release(O, l.lane)
    }
    expect(f.load(O)).to.deep.equal({ running: 0, waiting: 0, lanes: 0 })
  })

  it('refuses a pool size that is not a positive integer', () => {
    expect(() => new FairShare(0)).to.throw(RangeError, /positive integer/)
  })
})
