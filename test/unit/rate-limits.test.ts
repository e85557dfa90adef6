import { expect } from 'chai'
import type { Response } from 'express'
import { LruMap } from '../../common/lru-map.ts'
import { TokenBuckets } from '../../common/token-buckets.ts'
import { HttpRateLimit, clientPartition } from '../../api/rate-limit.ts'

/** The parts of an express Response that the rate limit writes to. */
function fakeResponse() {
  const headers: Record<string, string> = {}
  const sent: { status?: number; type?: string; body?: string } = {}
  const res = {
    setHeader: (k: string, v: string) => ((headers[k.toLowerCase()] = String(v)), res),
    status: (s: number) => ((sent.status = s), res),
    type: (t: string) => ((sent.type = t), res),
    send: (b: string) => ((sent.body = b), res),
  }
  return { res: res as unknown as Response, headers, sent }
}

describe('LruMap', () => {
  it(
    'evicts the least recently used entries beyond its capacity; a read or write ' +
      'makes an entry recent, a peek does not',
    () => {
      const m = new LruMap<string, number>(3)
      m.set('a', 1).set('b', 2).set('c', 3)
      expect(m.get('a')).to.equal(1) // a is now the most recent: b is the oldest
      m.set('d', 4)
      expect([...m.keys()]).to.deep.equal(['c', 'a', 'd'])
      expect(m.peek('c')).to.equal(3) // no touch: c stays the oldest
      m.set('a', 10) // an update is a use too
      m.set('e', 5)
      expect([...m.keys()]).to.deep.equal(['d', 'a', 'e'])
      expect(m.size).to.equal(3)
      expect(m.get('a')).to.equal(10)
      expect(m.get('c')).to.equal(undefined)
    },
  )

  it('keeps its order through deletes anywhere, deletes while iterating, and many evictions', () => {
    const m = new LruMap<string, number>(4)
    m.set('a', 1).set('b', 2).set('c', 3).set('d', 4)
    expect(m.delete('b')).to.equal(true)
    expect(m.delete('b')).to.equal(false)
    m.set('e', 5) // no eviction: b's place is free
    expect([...m.keys()]).to.deep.equal(['a', 'c', 'd', 'e'])
    for (const [k, v] of m.entries()) if (v % 2 === 1) m.delete(k) // as ApiKeys.forget does
    expect([...m.entries()]).to.deep.equal([['d', 4]])
    m.delete('d')
    expect([...m.keys()]).to.deep.equal([])
    m.set('z', 26)
    expect([...m.keys()]).to.deep.equal(['z'])
    expect(m.has('z')).to.equal(true)
    const big = new LruMap<number, number>(20_000)
    for (let i = 0; i < 100_000; i++) big.set(i, i)
    expect(big.size).to.equal(20_000)
    expect(big.peek(79_999)).to.equal(undefined)
    expect([...big.keys()].slice(0, 2)).to.deep.equal([80_000, 80_001])
  })

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new LruMap(0)).to.throw(RangeError)
  })
})

describe('TokenBuckets', () => {
  it('allows the burst at once, then the refill rate, answering the seconds to wait', () => {
    const b = new TokenBuckets({ perSecond: 2, burst: 3 })
    const t0 = 1_000_000
    expect([b.take('k', 1, t0), b.take('k', 1, t0), b.take('k', 1, t0)]).to.deep.equal([0, 0, 0])
    expect(b.take('k', 1, t0)).to.equal(1)
    expect(b.take('k', 1, t0 + 500)).to.equal(0) // one token back after 0.5 s at 2/s
    expect(b.take('k', 1, t0 + 500)).to.equal(1)
    expect(b.take('other', 1, t0)).to.equal(0) // buckets are per id
  })

  it(
    'charges a cost above the balance whole (a debt that refills before the next ' +
      'request) and checks without charging at cost 0',
    () => {
      const b = new TokenBuckets({ perSecond: 5, burst: 10 })
      const t0 = 1_000_000
      expect(b.take('k', 0, t0)).to.equal(0)
      expect(b.size, 'a check creates no bucket').to.equal(0)
      expect(b.take('k', 25, t0)).to.equal(0) // a batch of 25 against a burst of 10 is admitted...
      expect(b.tokens('k', t0)).to.equal(-15)
      expect(b.take('k', 0, t0)).to.equal(4) // ...and the key waits until it has one token again: (1 - -15) / 5 = 3.2 s
      expect(b.waitSeconds('k', t0)).to.equal(4)
      expect(b.take('k', 1, t0 + 3200)).to.equal(0)
    },
  )

  it('gives tokens back on refund, never above the burst', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 2 })
    const t0 = 1_000_000
    b.take('k', 1, t0)
    b.take('k', 1, t0)
    expect(b.take('k', 1, t0)).to.be.greaterThan(0)
    b.refund('k', 1, t0)
    expect(b.take('k', 1, t0)).to.equal(0)
    b.refund('k', 5, t0)
    expect(b.tokens('k', t0)).to.equal(2)
  })

  it('is unlimited with perSecond 0', () => {
    const b = new TokenBuckets({ perSecond: 0, burst: 0 })
    for (let i = 0; i < 100; i++) expect(b.take('k')).to.equal(0)
  })

  it('stays bounded under a flood of distinct ids without forgetting the bucket of the caller it limits', () => {
    const b = new TokenBuckets({ perSecond: 1, burst: 2 }, 1000)
    const t0 = 1_000_000
    b.take('flooder', 1, t0)
    b.take('flooder', 1, t0)
    for (let i = 0; i < 5000; i++) {
      b.take(`random-${i}`, 1, t0) // a flood of new callers...
      // ...while the limited one keeps trying
      expect(b.take('flooder', 1, t0), `after ${i} others`).to.be.greaterThan(0)
    }
    expect(b.size).to.equal(1000)
    expect(b.tokens('random-0', t0), 'the oldest callers are forgotten (a full bucket again)').to.equal(2)
    expect(b.tokens('random-4999', t0)).to.equal(1)
  })
})

describe('HttpRateLimit', () => {
  it('announces the policy and what is left on every admitted answer (draft-ietf-httpapi-ratelimit-headers-11)', () => {
    const limit = new HttpRateLimit('ingest', { perSecond: 10, burst: 20 })
    const { res, headers, sent } = fakeResponse()
    expect(limit.admit(res, 'k', 5, 'events')).to.equal(true)
    expect(headers['ratelimit-policy']).to.equal('"ingest";q=10;w=1')
    expect(headers.ratelimit).to.equal('"ingest";r=15;t=1')
    expect(sent.status).to.equal(undefined)
  })

  it('refuses with a 429 problem, Retry-After and r=0 once the bucket is empty', () => {
    const limit = new HttpRateLimit('ingest', { perSecond: 10, burst: 20 })
    expect(limit.admit(fakeResponse().res, 'k', 35, 'events')).to.equal(true) // debt: -15
    const { res, headers, sent } = fakeResponse()
    expect(limit.admit(res, 'k', 1, 'events')).to.equal(false)
    expect(sent.status).to.equal(429)
    expect(sent.type).to.equal('application/problem+json')
    expect(JSON.parse(sent.body!)).to.include({ status: 429, title: 'Too Many Requests' })
    expect(JSON.parse(sent.body!).detail).to.match(/10 events per second/)
    expect(headers['retry-after']).to.equal('2') // (1 - -15) / 10 = 1.6 s
    expect(headers.ratelimit).to.equal('"ingest";r=0;t=2')
    expect(headers['ratelimit-policy']).to.equal('"ingest";q=10;w=1')
  })

  it('admits everything without headers when perSecond is 0', () => {
    const limit = new HttpRateLimit('ingest', { perSecond: 0, burst: 0 })
    const { res, headers } = fakeResponse()
    expect(limit.admit(res, 'k', 1000)).to.equal(true)
    expect(headers).to.deep.equal({})
  })
})

describe('clientPartition', () => {
  it('keeps IPv4 addresses (also IPv4-mapped ones) and partitions IPv6 addresses by their /64', () => {
    expect(clientPartition('203.0.113.7')).to.equal('203.0.113.7')
    expect(clientPartition('::ffff:203.0.113.7')).to.equal('203.0.113.7')
    expect(clientPartition('2001:db8:1:2:aaaa::1')).to.equal('2001:db8:1:2::/64')
    expect(clientPartition('2001:db8:1:2:bbbb:cccc:dddd:eeee')).to.equal('2001:db8:1:2::/64')
    expect(clientPartition('2001:0db8:0001:0002::9')).to.equal('2001:db8:1:2::/64')
    expect(clientPartition('2001:db8::1')).to.equal('2001:db8:0:0::/64')
    expect(clientPartition('fe80::1%eth0')).to.equal('fe80:0:0:0::/64')
    expect(clientPartition('::1')).to.equal('0:0:0:0::/64')
  })
})
