/**
 * SSRF guard for every outbound connection (webhook and REST sinks, OAuth token endpoints, MongoDB
 * sinks and sources): only http and https URLs, and no host that is, or resolves to, an address that
 * is not global unicast (loopback, private, link-local and cloud metadata, CGNAT, NAT64, 6to4, Teredo,
 * documentation, benchmarking, multicast, reserved: every range of the IANA IPv4 and IPv6
 * special-purpose address registries that is not globally reachable, and all of IPv6 outside
 * 2000::/3), unless the configured allowlist permits it.
 *
 * Egress is pinned to what was checked: the guard's `lookup` is what sockets connect through (the
 * HTTP client's undici Agent, the MongoDB driver), so every new connection resolves the host once,
 * through the guard, and connects only to the addresses it approved. There is no earlier resolution
 * that a later one (DNS rebinding, a kept-alive pool outliving a DNS change) could disagree with.
 *
 *  - `check(url)`: when a URL is saved (the API answers 422 naming the field); resolves the host.
 *  - `checkForm(url)` / `checkHost(host)`: at delivery time, without DNS: the URL's form and an IP
 *    address host (net.connect never calls `lookup` for an IP address, so it is checked here).
 *  - `lookup`: a net/tls `lookup` function; refuses (UrlRefusedError) a name that resolves to any
 *    address not permitted, and fails with a RetriableError when the name does not resolve (DNS
 *    down, NXDOMAIN, a timeout): a resolution failure is retried, never a refusal.
 */
import dns from 'node:dns/promises'
import type { LookupAddress, LookupOptions } from 'node:dns'
import net from 'node:net'
import { RetriableError, UrlRefusedError } from './errors.ts'

export type LookupFn = (hostname: string) => Promise<Array<{ address: string; family: number }>>

export interface UrlGuardOptions {
  /** Host names (`*.example.test` for a suffix), IP addresses or CIDRs permitted although not public. */
  allowlist?: string | readonly string[]
  /** Resolver (default: dns.lookup with all: true, as net.connect would resolve). Tests inject one. */
  lookup?: LookupFn
}

export interface CheckedUrl {
  url: URL
  /** The addresses the host resolved to, every one of them permitted. */
  addresses: string[]
}

export interface UrlGuard {
  /**
   * Save time: the URL's form and every address its host resolves to now. Rejects with
   * UrlRefusedError saying why, or with RetriableError (context.reason 'unresolvable') when the host
   * does not resolve now.
   */
  check(url: string): Promise<CheckedUrl>
  /** Delivery time, no DNS: the URL's form, and its host when it is an IP address. Throws UrlRefusedError. */
  checkForm(url: string): URL
  /**
   * No DNS: an IP address host (brackets allowed) is checked, a host name is left to `lookup`. Throws UrlRefusedError.
   */
  checkHost(host: string): void
  /**
   * The addresses of a host, every one permitted (UrlRefusedError otherwise; RetriableError when it does not resolve).
   */
  resolve(host: string): Promise<LookupAddress[]>
  /** For net.connect / tls.connect / undici `connect` / the MongoDB driver: resolves through `resolve`. */
  readonly lookup: net.LookupFunction
}

/**
 * Address ranges that are not global unicast, each with the reason given in the refusal (the first
 * range that holds an address names it). IPv4-mapped IPv6 (::ffff:0:0/96) is checked as the IPv4
 * address it carries (unmapIPv4), so it is not here.
 */
const RANGES: Array<[cidr: string, reason: string]> = [
  // IPv4 special-purpose address registry (ranges not globally reachable), and multicast
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT (shared address space)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (includes the cloud metadata address 169.254.169.254)'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', '6to4 relay anycast (deprecated)'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
  // IPv6 special-purpose address registry, and the rest of the IPv6 address space registry
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'IPv4-compatible (deprecated)'],
  ['64:ff9b::/96', 'NAT64 (reaches the IPv4 address it embeds)'],
  ['64:ff9b:1::/48', 'local-use NAT64'],
  ['100::/64', 'discard-only'],
  ['100:0:0:1::/64', 'dummy prefix'],
  ['2001::/32', 'Teredo (reaches the IPv4 address it embeds)'],
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'IETF protocol assignments'],
  ['2002::/16', '6to4 (reaches the IPv4 address it embeds)'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'segment routing (SRv6) SIDs'],
  ['fc00::/7', 'private (unique local)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local (deprecated)'],
  ['ff00::/8', 'multicast'],
]

const blockLists = RANGES.map(([cidr, reason]) => {
  const [addr, bits] = cidr.split('/') as [string, string]
  const type = net.isIPv6(addr) ? 'ipv6' : 'ipv4'
  const list = new net.BlockList()
  list.addSubnet(addr, Number(bits), type)
  return { cidr, reason, type, list }
})

/** IPv6 global unicast: every IPv6 address outside it is reserved or special-purpose. */
const globalUnicast = new net.BlockList()
globalUnicast.addSubnet('2000::', 3, 'ipv6')

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

/** An address without brackets or an IPv6 zone (`fe80::1%eth0`), lower case. */
function plainAddress(address: string): string {
  return address
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '')
    .toLowerCase()
}

/** `::ffff:a.b.c.d` (IPv4-mapped IPv6, in any notation) as the IPv4 address it carries, else the input. */
export function unmapIPv4(address: string): string {
  const ip = plainAddress(address)
  if (!net.isIPv6(ip)) return ip
  const g = ipv6Groups(ip)
  if (!g.slice(0, 5).every((x) => x === 0) || g[5] !== 0xffff) return ip
  return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`
}

/** Why an address is not global unicast (e.g. 'loopback'), or null when it is a public unicast address. */
export function forbiddenReason(address: string): string | null {
  const ip = unmapIPv4(address)
  const type = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) ? 'ipv6' : null
  if (type === null) return 'not an IP address'
  for (const b of blockLists) if (b.type === type && b.list.check(ip, type)) return b.reason
  if (type === 'ipv6' && !globalUnicast.check(ip, 'ipv6')) return 'reserved (outside IPv6 global unicast 2000::/3)'
  return null
}

interface Allowlist {
  hosts: Set<string>
  suffixes: string[]
  addresses: net.BlockList
}

export function parseAllowlist(spec: string | readonly string[] = []): Allowlist {
  const entries = (typeof spec === 'string' ? spec.split(',') : [...spec])
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '')
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
  const lookupFn = options.lookup ?? defaultLookup
  const hostAllowed = (host: string) => allow.hosts.has(host) || allow.suffixes.some((s) => host.endsWith(s))
  const addressAllowed = (ip: string) => {
    const plain = unmapIPv4(ip)
    return allow.addresses.check(plain, net.isIPv6(plain) ? 'ipv6' : 'ipv4')
  }
  /** Throws when `address` (of `host`) is not permitted. */
  const checkAddress = (host: string, address: string) => {
    const reason = forbiddenReason(address)
    if (reason === null || hostAllowed(host) || addressAllowed(address)) return
    const via = net.isIP(plainAddress(host)) ? '' : ` (${host} resolves to ${address})`
    throw new UrlRefusedError(`address ${address}${via} is ${reason} and not in the allowlist`, {
      reason,
      host,
      address,
    })
  }
  const checkHost = (raw: string) => {
    const host = plainAddress(raw)
    if (net.isIP(host)) checkAddress(host, host)
  }
  const resolve = async (raw: string): Promise<LookupAddress[]> => {
    const host = plainAddress(raw)
    if (net.isIP(host)) {
      checkAddress(host, host)
      return [{ address: host, family: net.isIPv6(host) ? 6 : 4 }]
    }
    let found: Array<{ address: string; family: number }>
    try {
      found = await lookupFn(host)
    } catch (err) {
      const code = (err as { code?: unknown })?.code
      throw new RetriableError(
        `host ${host} does not resolve now (${typeof code === 'string' ? code : (err as Error)?.message})`,
        undefined,
        { reason: 'unresolvable', host, errorCode: code },
        { cause: err },
      )
    }
    if (found.length === 0)
      throw new RetriableError(`host ${host} does not resolve now (no address)`, undefined, {
        reason: 'unresolvable',
        host,
      })
    for (const a of found) checkAddress(host, a.address)
    return found.map((a) => ({ address: a.address, family: a.family }))
  }
  const checkForm = (raw: string): URL => {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new UrlRefusedError('not a valid absolute URL', { reason: 'invalid' })
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new UrlRefusedError(`scheme ${url.protocol.replace(/:$/, '')} is not allowed: only http and https`, {
        reason: 'scheme',
      })
    }
    if (url.username !== '' || url.password !== '') {
      throw new UrlRefusedError("credentials in the URL are not allowed: use the sink's auth settings", {
        reason: 'credentials',
      })
    }
    checkHost(url.hostname)
    return url
  }
  const lookup: net.LookupFunction = (hostname: string, opts: LookupOptions, callback) => {
    resolve(hostname).then(
      (found) => {
        const family = opts.family === 'IPv4' ? 4 : opts.family === 'IPv6' ? 6 : opts.family
        const usable = family === 4 || family === 6 ? found.filter((a) => a.family === family) : found
        if (usable.length === 0) {
          const err = new RetriableError(`host ${hostname} has no IPv${family} address`, undefined, {
            reason: 'unresolvable',
            host: hostname,
          })
          return callback(err as unknown as NodeJS.ErrnoException, '', 0)
        }
        if (opts.all) callback(null, usable)
        else callback(null, usable[0]!.address, usable[0]!.family)
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, '', 0),
    )
  }
  return {
    async check(raw: string): Promise<CheckedUrl> {
      const url = checkForm(raw)
      const addresses = (await resolve(url.hostname)).map((a) => a.address)
      return { url, addresses }
    },
    checkForm,
    checkHost,
    resolve,
    lookup,
  }
}
