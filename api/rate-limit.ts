/**
 * Rate limits over HTTP: the partition of a caller's address, the `RateLimit` and `RateLimit-Policy`
 * response fields of draft-ietf-httpapi-ratelimit-headers-11 (Structured Fields: a quoted policy
 * name with parameters), and the refusals: 429 with Retry-After when a limit is exhausted, 503 with
 * Retry-After when a bounded resource (key verification) is busy, both RFC 9457 problems.
 *
 *   RateLimit-Policy: "ingest";q=10000;w=1     the policy: q quota units per w seconds (sustained)
 *   RateLimit: "ingest";r=9500;t=1             what is left now (r) and for how long it counts (t);
 *                                              r=0 with t = the seconds until a unit is free again
 *
 * The limits are token buckets: q is their refill per second, and the burst (the bucket's size) may
 * let a caller spend more than q at once, which r then shows.
 */
import net from 'node:net'
import type { Request, Response } from 'express'
import { RateLimitedError } from '../common/errors.ts'
import { TokenBuckets, type RateLimit } from '../common/token-buckets.ts'
import { unmapIPv4 } from '../common/url-guard.ts'
import { sendProblem } from './problem.ts'

type Policy = NonNullable<RateLimitedError['policy']>

/** The caller's partition for per-client limits (see clientPartition). */
export function clientOf(req: Request): string {
  return clientPartition(req.ip ?? req.socket.remoteAddress ?? 'unknown')
}

/**
 * An IPv4 address as it is (also when IPv4-mapped), an IPv6 address as its /64: one host or one
 * customer line usually holds a whole /64, so per-address limits on IPv6 addresses would not limit.
 */
export function clientPartition(address: string): string {
  const ip = unmapIPv4(address.replace(/%.*$/, ''))
  if (!net.isIPv6(ip)) return ip
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t]
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

const policyField = (p: Policy) => `"${p.name}";q=${p.perSecond};w=1`

/** A 429 (a limit of the caller) or 503 (busy) problem with Retry-After and, for a 429, the RateLimit fields. */
export function sendRefusal(res: Response, err: RateLimitedError): void {
  const wait = Math.max(1, Math.ceil(err.retryAfterMs / 1000))
  res.setHeader('Retry-After', String(wait))
  if (!err.policy) return sendProblem(res, { title: 'Service Unavailable', status: 503, detail: err.message })
  res.setHeader('RateLimit-Policy', policyField(err.policy))
  res.setHeader('RateLimit', `"${err.policy.name}";r=0;t=${wait}`)
  sendProblem(res, { title: 'Too Many Requests', status: 429, detail: err.message })
}

/** One named limit of the HTTP API: a token bucket per caller id, announced on every answer it admits. */
export class HttpRateLimit {
  readonly buckets: TokenBuckets
  readonly #policy: Policy
  readonly #field: string

  constructor(name: string, limit: RateLimit) {
    this.buckets = new TokenBuckets(limit)
    this.#policy = { name, ...limit }
    this.#field = policyField(this.#policy)
  }

  /**
   * Charges `cost` units to `id` (0: only checks that one is left). True when admitted, with the
   * RateLimit fields set on the answer; false when refused, the 429 already sent.
   */
  admit(res: Response, id: string, cost = 1, what = 'requests'): boolean {
    if (this.#policy.perSecond <= 0) return true
    const now = Date.now()
    const wait = this.buckets.take(id, cost, now)
    if (wait > 0) {
      sendRefusal(
        res,
        new RateLimitedError(
          `rate limit of ${this.#policy.perSecond} ${what} per second exceeded; retry after ${wait} s`,
          wait * 1000,
          this.#policy,
        ),
      )
      return false
    }
    const left = this.buckets.tokens(id, now)
    res.setHeader('RateLimit-Policy', this.#field)
    const t = left >= 1 ? 1 : this.buckets.waitSeconds(id, now)
    res.setHeader('RateLimit', `"${this.#policy.name}";r=${Math.max(0, Math.floor(left))};t=${t}`)
    return true
  }
}
