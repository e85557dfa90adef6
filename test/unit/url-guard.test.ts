import { expect } from 'chai'
import { createUrlGuard, forbiddenReason, unmapIPv4, type LookupFn } from '../../common/url-guard.ts'
import { UrlRefusedError } from '../../common/errors.ts'

const resolver = (table: Record<string, string[]>): LookupFn => async (host) => {
  const a = table[host]
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
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
  it('names the range of every non-public address', () => {
    const cases: Record<string, RegExp> = {
      '127.0.0.1': /loopback/,
      '127.255.0.9': /loopback/,
      '10.0.0.1': /private/,
      '172.16.0.1': /private/,
      '172.31.255.255': /private/,
      '192.168.1.1': /private/,
      '169.254.169.254': /link-local.*metadata/,
      '100.64.0.1': /carrier-grade NAT/,
      '0.0.0.0': /unspecified/,
      '224.0.0.251': /multicast/,
      '255.255.255.255': /broadcast/,
      '::1': /loopback/,
      '::': /unspecified/,
      'fc00::1': /private/,
      'fd12:3456::1': /private/,
      'fe80::1': /link-local/,
      'ff02::1': /multicast/,
      '::ffff:127.0.0.1': /loopback/,
      '::ffff:a9fe:a9fe': /link-local/,
      '0:0:0:0:0:ffff:10.1.2.3': /private/,
    }
    for (const [ip, reason] of Object.entries(cases)) expect(forbiddenReason(ip), ip).to.match(reason)
    for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(forbiddenReason(ip), ip).to.equal(null)
  })

  it('unmaps IPv4-mapped IPv6 in every notation', () => {
    expect(unmapIPv4('::ffff:7f00:1')).to.equal('127.0.0.1')
    expect(unmapIPv4('[::FFFF:192.168.0.1]')).to.equal('192.168.0.1')
    expect(unmapIPv4('2001:db8::1')).to.equal('2001:db8::1')
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
    for (const url of ['http://127.0.0.1/', 'http://2130706433/', 'http://0x7f.1/', 'http://[::1]/', 'http://[::ffff:169.254.169.254]/', 'http://169.254.169.254/latest/meta-data/']) {
      await refusal(guard.check(url))
    }
  })

  it('refuses a host name when any address it resolves to is not public', async () => {
    const guard = createUrlGuard({ lookup: resolver({ 'rebind.example': ['93.184.216.34', '10.0.0.5'], 'meta.example': ['169.254.169.254'], 'v6.example': ['fd00::2'] }) })
    const e = await refusal(guard.check('https://rebind.example/'))
    expect(e.message).to.match(/rebind\.example resolves to 10\.0\.0\.5/)
    await refusal(guard.check('https://meta.example/'))
    await refusal(guard.check('https://v6.example/'))
    expect((await refusal(guard.check('https://nowhere.example/'))).context.reason).to.equal('unresolvable')
  })

  it('lets the allowlist permit hosts, addresses and CIDRs, and nothing else', async () => {
    const lookup = resolver({ 'localhost': ['127.0.0.1'], 'svc.internal.test': ['10.9.0.7'], 'other.test': ['10.8.0.1'], 'crm.corp.test': ['192.168.5.5'] })
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
