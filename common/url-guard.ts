/**
 * SSRF guard for every outbound URL (webhook and REST sinks, OAuth token endpoints): only http and
 * https, and no host that is, or resolves to, a loopback, private, link-local (cloud metadata),
 * unspecified, multicast, CGNAT or reserved address, unless the configured allowlist permits it.
 *
 * Call `check()` when a URL is saved (the API answers 422) and again at delivery time (DNS can
 * change); connect to one of the returned `addresses` to rule out DNS rebinding between the two.
 */
import dns from 'node:dns/promises'
import net from 'node:net'
import { UrlRefusedError } from './errors.ts'

export type LookupFn = (hostname: string) => Promise<Array<{ address: string; family: number }>>

export interface UrlGuardOptions {
  /** Host names (`*.example.test` for a suffix), IP addresses or CIDRs permitted although not public. */
  allowlist?: string | readonly string[]
  /** Resolver (default: dns.lookup with all: true, as the HTTP client would resolve). */
  lookup?: LookupFn
}

export interface CheckedUrl {
  url: URL
  /** The addresses the host resolved to, every one of them permitted. */
  addresses: string[]
}

export interface UrlGuard {
  /** Resolves with the permitted URL, or rejects with UrlRefusedError saying why. */
  check(url: string): Promise<CheckedUrl>
}

/** Non-public ranges, each with the reason given in the refusal. */
const RANGES: Array<[cidr: string, reason: string]> = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (includes the cloud metadata address 169.254.169.254)'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'local-use NAT64'],
  ['100::/64', 'discard-only'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'private (unique local)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
]

const blockLists = RANGES.map(([cidr, reason]) => {
  const [addr, bits] = cidr.split('/') as [string, string]
  const list = new net.BlockList()
  list.addSubnet(addr, Number(bits), net.isIPv6(addr) ? 'ipv6' : 'ipv4')
  return { cidr, reason, list }
})

/** The eight 16-bit groups of an IPv6 address (an embedded dotted IPv4 tail included). */
function ipv6Groups(ip: string): number[] {
  let s = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s)
  if (v4) {
    const o = v4[1]!.split('.').map(Number)
    s = s.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0')
  return [...h, ...zeros, ...t].map((g) => parseInt(g, 16))
}

/** `::ffff:a.b.c.d` (in any notation) and the deprecated `::a.b.c.d` as the IPv4 address they carry, else the input. */
export function unmapIPv4(address: string): string {
  const ip = address.replace(/^\[|\]$/g, '').toLowerCase()
  if (!net.isIPv6(ip)) return ip
  const g = ipv6Groups(ip)
  const zeroHead = g.slice(0, 5).every((x) => x === 0)
  const mapped = zeroHead && g[5] === 0xffff
  const compatible = zeroHead && g[5] === 0 && (g[6]! !== 0 || g[7]! > 1)
  if (!mapped && !compatible) return ip
  return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`
}

/** Why an address is not public (e.g. 'loopback'), or null when it is a public unicast address. */
export function forbiddenReason(address: string): string | null {
  const ip = unmapIPv4(address)
  const type = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) ? 'ipv6' : null
  if (type === null) return 'not an IP address'
  if (ip === '255.255.255.255') return 'broadcast'
  for (const b of blockLists) if (b.list.check(ip, type)) return b.reason
  return null
}

interface Allowlist {
  hosts: Set<string>
  suffixes: string[]
  addresses: net.BlockList
}

export function parseAllowlist(spec: string | readonly string[] = []): Allowlist {
  const entries = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((e) => e.trim().toLowerCase()).filter((e) => e !== '')
  const out: Allowlist = { hosts: new Set(), suffixes: [], addresses: new net.BlockList() }
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined]
    const ip = unmapIPv4(addr)
    if (net.isIP(ip)) {
      const type = net.isIPv6(ip) ? 'ipv6' : 'ipv4'
      if (bits === undefined) out.addresses.addAddress(ip, type)
      else out.addresses.addSubnet(ip, Number(bits), type)
    } else if (e.startsWith('*.')) out.suffixes.push(e.slice(1))
    else out.hosts.add(e)
  }
  return out
}

const defaultLookup: LookupFn = (hostname) => dns.lookup(hostname, { all: true, verbatim: true })

export function createUrlGuard(options: UrlGuardOptions = {}): UrlGuard {
  const allow = parseAllowlist(options.allowlist)
  const lookup = options.lookup ?? defaultLookup
  const addressAllowed = (ip: string) => {
    const plain = unmapIPv4(ip)
    return allow.addresses.check(plain, net.isIPv6(plain) ? 'ipv6' : 'ipv4')
  }
  return {
    async check(raw: string): Promise<CheckedUrl> {
      let url: URL
      try {
        url = new URL(raw)
      } catch {
        throw new UrlRefusedError('not a valid absolute URL', { reason: 'invalid' })
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new UrlRefusedError(`scheme ${url.protocol.replace(/:$/, '')} is not allowed: only http and https`, { reason: 'scheme' })
      }
      if (url.username !== '' || url.password !== '') {
        throw new UrlRefusedError('credentials in the URL are not allowed: use the sink\'s auth settings', { reason: 'credentials' })
      }
      const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase()
      const hostAllowed = allow.hosts.has(host) || allow.suffixes.some((s) => host.endsWith(s))
      let addresses: string[]
      if (net.isIP(host)) addresses = [host]
      else {
        try {
          addresses = (await lookup(host)).map((a) => a.address)
        } catch (err) {
          throw new UrlRefusedError(`host ${host} does not resolve`, { reason: 'unresolvable', host }, { cause: err })
        }
        if (addresses.length === 0) throw new UrlRefusedError(`host ${host} does not resolve`, { reason: 'unresolvable', host })
      }
      if (!hostAllowed) {
        for (const address of addresses) {
          const reason = forbiddenReason(address)
          if (reason !== null && !addressAllowed(address)) {
            const via = net.isIP(host) ? '' : ` (${host} resolves to ${address})`
            throw new UrlRefusedError(`address ${address}${via} is ${reason} and not in the allowlist`, { reason, host, address })
          }
        }
      }
      return { url, addresses }
    },
  }
}

/** One-shot form for callers without a guard at hand (delivery time in a sink). */
export function assertUrlAllowed(url: string, options: UrlGuardOptions = {}): Promise<CheckedUrl> {
  return createUrlGuard(options).check(url)
}
