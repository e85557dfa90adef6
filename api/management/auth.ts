/**
 * Authentication (Bearer API key on every management route but the document) and a token-bucket
 * rate limit per key (per client address for requests without a valid key, which also slows down
 * guessing). 401 and 429 are problems; 429 carries Retry-After.
 */
import type { RequestHandler } from 'express'
import type { ControlPlane } from '../../control-plane/index.ts'
import { sendProblem } from '../problem.ts'

export interface RateLimit {
  perSecond: number
  burst: number
}

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(private readonly limit: RateLimit) {}

  /** 0 when allowed, else the seconds to wait. */
  take(id: string, now = Date.now()): number {
    const { perSecond, burst } = this.limit
    if (perSecond <= 0) return 0
    const b = this.buckets.get(id) ?? { tokens: burst, at: now }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond)
    b.at = now
    if (this.buckets.size > 50_000) this.buckets.clear()
    this.buckets.set(id, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perSecond))
  }
}

function tooMany(res: Parameters<RequestHandler>[1], wait: number): void {
  res.setHeader('Retry-After', String(wait))
  sendProblem(res, { title: 'Too Many Requests', status: 429, detail: `rate limit exceeded; retry after ${wait} s` })
}

export function authenticate(cp: ControlPlane, buckets: TokenBuckets, publicPaths: ReadonlySet<string>): RequestHandler {
  return async (req, res, next) => {
    if (req.method === 'GET' && publicPaths.has(req.path)) return next()
    const header = req.get('authorization') ?? ''
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    const principal = m ? await cp.keys.authenticate(m[1]!).catch(next) : null
    if (principal === undefined) return
    if (!principal) {
      const wait = buckets.take(`ip:${req.ip ?? 'unknown'}`)
      if (wait > 0) return tooMany(res, wait)
      res.setHeader('WWW-Authenticate', 'Bearer realm="distributary"')
      sendProblem(res, {
        title: 'Unauthorized',
        status: 401,
        detail: m ? 'the API key is unknown, revoked or expired' : 'send an API key as Authorization: Bearer <key>',
        errors: [{ field: 'Authorization', message: m ? 'is not a valid API key' : 'is missing' }],
      })
      return
    }
    const wait = buckets.take(`key:${principal.keyId}`)
    if (wait > 0) return tooMany(res, wait)
    res.locals.principal = principal
    next()
  }
}
