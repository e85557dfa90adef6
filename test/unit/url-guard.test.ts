import { expect } from 'chai'
import { createUrlGuard, forbiddenReason, unmapIPv4, type LookupFn } from '../../common/url-guard.ts'
import type { LookupOptions } from 'node:dns'
import { RetriableError, UrlRefusedError } from '../../common/errors.ts'
import type { UrlGuard } from '../../common/url-guard.ts'

const resolver =
  (table: Record<string, string[]>): LookupFn =>
  async (host) => {
    const a = table[host]
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  }

/** One call of the guard's net-style lookup, its callback's arguments as an object. */
function lookupOnce(
  guard: UrlGuard,
  host: string,
  options: LookupOptions,
): Promise<{ err: unknown; address: unknown; family: unknown }> {
  return new Promise((resolve) =>
    guard.lookup(host, options, (err, address, family) => resolve({ err, address, family })),
  )
}

async function refusal(p: Promise<unknown>): Promise<UrlRefusedError> {
  try {
    await p
  } catch (err) {
    expect(err).to.be.instanceOf(UrlRefusedError)
    return err as UrlRefusedError
  }
  throw new Error('expected a refusal')
}

describe('url guard', () => {
  it('refuses every special-purpose range of the IANA registries, naming it, and passes global unicast', () => {
    // [address, reason]: the first and last address of each range where it matters, and the forms that embed IPv4
    const cases: Array<[string, RegExp]> = [
      // IPv4 special-purpose address registry (not globally reachable), multicast, broadcast
      ['0.0.0.0', /unspecified/],
      ['0.255.255.255', /unspecified/],
      ['10.0.0.0', /private/],
      ['10.255.255.255', /private/],
      ['100.64.0.0', /carrier-grade NAT/],
      ['100.127.255.255', /carrier-grade NAT/],
      ['127.0.0.1', /loopback/],
      ['127.255.0.9', /loopback/],
      ['169.254.0.1', /link-local/],
      ['169.254.169.254', /link-local.*metadata/],
      ['172.16.0.1', /private/],
      ['172.31.255.255', /private/],
      ['192.0.0.0', /IETF protocol assignments/],
      ['192.0.0.8', /IETF protocol assignments/],
      ['192.0.0.170', /IETF protocol assignments/],
      ['192.0.0.255', /IETF protocol assignments/],
      ['192.0.2.1', /documentation/],
      ['192.88.99.1', /6to4 relay/],
      ['192.168.0.1', /private/],
      ['192.168.255.255', /private/],
      ['198.18.0.1', /benchmarking/],
      ['198.19.255.255', /benchmarking/],
      ['198.51.100.7', /documentation/],
      ['203.0.113.9', /documentation/],
      ['224.0.0.251', /multicast/],
      ['239.255.255.250', /multicast/],
      ['240.0.0.1', /reserved/],
      ['254.255.255.255', /reserved/],
      ['255.255.255.255', /broadcast/],
      // IPv6 special-purpose address registry, and everything outside global unicast 2000::/3
      ['::', /unspecified/],
      ['::1', /loopback/],
      ['::127.0.0.1', /IPv4-compatible/],
      ['::8.8.8.8', /IPv4-compatible/],
      ['64:ff9b::', /NAT64/],
      ['64:ff9b::7f00:1', /NAT64/],
      ['64:ff9b::8.8.8.8', /NAT64/],
      ['64:ff9b:1::1', /local-use NAT64/],
      ['64:ff9b:1:ffff::1', /local-use NAT64/],
      ['100::1', /discard-only/],
      ['100::ffff:ffff:ffff:ffff', /discard-only/],
      ['100:0:0:1::1', /dummy prefix/],
      ['2001::1', /Teredo/],
      ['2001:0:4136:e378:8000:63bf:3fff:fdd2', /Teredo/],
      ['2001:1::1', /IETF protocol assignments/],
      ['2001:2::1', /IETF protocol assignments/],
      ['2001:10::1', /IETF protocol assignments/],
      ['2001:1ff:ffff::1', /IETF protocol assignments/],
      ['2001:db8::1', /documentation/],
      ['2001:db8:ffff::1', /documentation/],
      ['2002::1', /6to4/],
      ['2002:7f00:1::1', /6to4/],
      ['2002:ffff:ffff::1', /6to4/],
      ['3fff::1', /documentation/],
      ['5f00::1', /segment routing/],
      ['fc00::1', /unique local/],
      ['fd12:3456::1', /unique local/],
      ['fe80::1', /link-local/],
      ['fe80::1%eth0', /link-local/],
      ['febf::1', /link-local/],
      ['fec0::1', /site-local/],
      ['ff02::1', /multicast/],
      ['ff0e::1', /multicast/],
      ['::2', /IPv4-compatible|reserved/],
      ['1::1', /reserved/],
      ['4000::1', /reserved/],
      ['e000::1', /reserved/],
      // IPv4-mapped IPv6: the rules of the IPv4 address it carries, in every notation
      ['::ffff:127.0.0.1', /loopback/],
      ['::ffff:7f00:1', /loopback/],
      ['[::FFFF:7F00:0001]', /loopback/],
      ['0:0:0:0:0:ffff:10.1.2.3', /private/],
      ['::ffff:a9fe:a9fe', /link-local.*metadata/],
      ['::ffff:100.64.0.1', /carrier-grade NAT/],
      ['::ffff:0.0.0.0', /unspecified/],
      ['::ffff:255.255.255.255', /broadcast/],
    ]
    for (const [ip, reason] of cases) expect(forbiddenReason(ip), ip).to.match(reason)
    const publicOnes = [
      '8.8.8.8',
      '1.1.1.1',
      '9.255.255.255',
      '11.0.0.0',
      '100.63.255.255',
      '100.128.0.1',
      '126.255.255.255',
      '128.0.0.0',
      '169.253.255.255',
      '172.15.255.255',
      '172.32.0.1',
      '192.0.1.255',
      '192.0.3.0',
      '192.88.98.255',
      '192.88.100.0',
      '192.167.255.255',
      '192.169.0.0',
      '198.17.255.255',
      '198.20.0.0',
      '223.255.255.255',
      '2606:4700:4700::1111',
      '2001:200::1',
      '2001:4860:4860::8888',
      '2003::1',
      '2a00:1450::1',
      '3ffe::1',
      '3fff:1000::1',
      '::ffff:8.8.8.8',
    ]
    for (const ip of publicOnes) expect(forbiddenReason(ip), ip).to.equal(null)
  })

  it('unmaps IPv4-mapped IPv6 in every notation, and nothing else', () => {
    expect(unmapIPv4('::ffff:7f00:1')).to.equal('127.0.0.1')
    expect(unmapIPv4('[::FFFF:192.168.0.1]')).to.equal('192.168.0.1')
    expect(unmapIPv4('2001:db8::1')).to.equal('2001:db8::1')
    expect(unmapIPv4('64:ff9b::7f00:1')).to.equal('64:ff9b::7f00:1')
    expect(unmapIPv4('::7f00:1')).to.equal('::7f00:1')
  })

  it('allows public http(s) URLs and refuses other schemes and embedded credentials', async () => {
    const guard = createUrlGuard({ lookup: resolver({ 'hooks.example.com': ['93.184.216.34'] }) })
    const ok = await guard.check('https://hooks.example.com/in')
    expect(ok.addresses).to.deep.equal(['93.184.216.34'])
    expect((await refusal(guard.check('ftp://hooks.example.com/'))).context.reason).to.equal('scheme')
    expect((await refusal(guard.check('file:///etc/passwd'))).context.reason).to.equal('scheme')
    expect((await refusal(guard.check('https://u:p@hooks.example.com/'))).context.reason).to.equal('credentials')
    expect((await refusal(guard.check('not a url'))).context.reason).to.equal('invalid')
  })

  it('refuses literal addresses, including decimal and hex IPv4 forms', async () => {
    const guard = createUrlGuard({ lookup: resolver({}) })
    for (const url of [
      'http://127.0.0.1/',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://[::1]/',
      'http://[::ffff:169.254.169.254]/',
      'http://169.254.169.254/latest/meta-data/',
    ]) {
      await refusal(guard.check(url))
    }
  })

  it('refuses a host name when any address it resolves to is not public', async () => {
    const guard = createUrlGuard({
      lookup: resolver({
        'rebind.example': ['93.184.216.34', '10.0.0.5'],
        'meta.example': ['169.254.169.254'],
        'v6.example': ['fd00::2'],
      }),
    })
    const e = await refusal(guard.check('https://rebind.example/'))
    expect(e.message).to.match(/rebind\.example resolves to 10\.0\.0\.5/)
    await refusal(guard.check('https://meta.example/'))
    await refusal(guard.check('https://v6.example/'))
  })

  it('a host that does not resolve is a retriable failure, never a refusal', async () => {
    const guard = createUrlGuard({ lookup: resolver({ 'empty.example': [] }) })
    for (const url of ['https://nowhere.example/', 'https://empty.example/']) {
      const err = await guard.check(url).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err, url).to.be.instanceOf(RetriableError)
      expect((err as RetriableError).context.reason).to.equal('unresolvable')
    }
    const viaLookup = await lookupOnce(guard, 'nowhere.example', { all: true })
    expect(viaLookup.err).to.be.instanceOf(RetriableError)
  })

  it('checks the form and an IP-address host without DNS, and leaves a host name to lookup', () => {
    let asked = 0
    const guard = createUrlGuard({ lookup: async () => (asked++, [{ address: '127.0.0.1', family: 4 }]) })
    expect(guard.checkForm('https://hooks.example.com/in?x=1').hostname).to.equal('hooks.example.com')
    expect(() => guard.checkForm('http://127.0.0.1/')).to.throw(UrlRefusedError)
    expect(() => guard.checkForm('http://[::ffff:7f00:1]/')).to.throw(UrlRefusedError)
    expect(() => guard.checkForm('http://[64:ff9b::a9fe:a9fe]/')).to.throw(UrlRefusedError, /NAT64/)
    expect(() => guard.checkForm('gopher://hooks.example.com/')).to.throw(UrlRefusedError)
    expect(() => guard.checkHost('[2002:a00:1::1]')).to.throw(UrlRefusedError, /6to4/)
    guard.checkHost('db.example.com')
    expect(asked).to.equal(0)
  })

  it('lookup (as net.connect calls it) answers only approved addresses, in both callback forms', async () => {
    const guard = createUrlGuard({
      lookup: resolver({
        'ok.example': ['93.184.216.34', '2606:2800:220:1::1'],
        'mixed.example': ['93.184.216.34', '::ffff:10.0.0.1'],
      }),
    })
    const all = await lookupOnce(guard, 'ok.example', { all: true })
    expect(all.err).to.equal(null)
    expect(all.address).to.deep.equal([
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ])
    const one = await lookupOnce(guard, 'ok.example', { family: 6 })
    expect([one.address, one.family]).to.deep.equal(['2606:2800:220:1::1', 6])
    const v4 = await lookupOnce(guard, 'ok.example', {})
    expect([v4.address, v4.family]).to.deep.equal(['93.184.216.34', 4])
    const refused = await lookupOnce(guard, 'mixed.example', { all: true })
    expect(refused.err).to.be.instanceOf(UrlRefusedError)
    expect((refused.err as UrlRefusedError).message).to.match(/mixed\.example resolves to ::ffff:10\.0\.0\.1.*private/)
    expect((await lookupOnce(guard, '10.0.0.1', { all: true })).err).to.be.instanceOf(UrlRefusedError)
  })

  it('lets the allowlist permit hosts, addresses and CIDRs, and nothing else', async () => {
    const lookup = resolver({
      localhost: ['127.0.0.1'],
      'svc.internal.test': ['10.9.0.7'],
      'other.test': ['10.8.0.1'],
      'crm.corp.test': ['192.168.5.5'],
    })
    const guard = createUrlGuard({ allowlist: '127.0.0.1, 10.9.0.0/16, *.corp.test', lookup })
    await guard.check('http://127.0.0.1:8080/')
    await guard.check('http://localhost/')
    await guard.check('http://svc.internal.test/')
    await guard.check('https://crm.corp.test/')
    await guard.check('http://[::ffff:127.0.0.1]/')
    await refusal(guard.check('http://127.0.0.2/'))
    await refusal(guard.check('http://other.test/'))
    await refusal(guard.check('http://169.254.169.254/'))
  })

  it('resolves with the real resolver (localhost is loopback)', async () => {
    const e = await refusal(createUrlGuard().check('http://localhost:1/'))
    expect(e.context.reason).to.equal('loopback')
  })
})
