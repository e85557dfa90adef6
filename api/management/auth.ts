/**
 * Authentication (Bearer API key on every management route but the document) and a token-bucket
 * rate limit per key. A key this process has not verified yet first passes the attempt limits of
 * ApiKeys (per client address and per key prefix, before any lookup or hash). 401, 429 and 503 are
 * problems; 429 and 503 carry Retry-After, and every admitted answer the RateLimit fields.
 */
import type { Request, RequestHandler } from 'express'
import { RateLimitedError } from '../../common/errors.ts'
import type { ApiKeys, ControlPlane } from '../../control-plane/index.ts'
import type { Principal as IngestPrincipal } from '../../producers/http-ingest/index.ts'
import { sendProblem } from '../problem.ts'
import { clientOf, sendRefusal, type HttpRateLimit } from '../rate-limit.ts'

/** The key of `Authorization: Bearer <key>`, or undefined. */
export const bearerKey = (req: Request): string | undefined =>
  /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1]

export function authenticate(
  cp: ControlPlane,
  perKey: HttpRateLimit,
  publicPaths: ReadonlySet<string>,
): RequestHandler {
  return async (req, res, next) => {
    // whatever the method: one the document does not list is then the validator's 405 naming those it does (it was
    // a 401 asking for a key, which no method of these routes takes)
    if (publicPaths.has(req.path)) return next()
    const key = bearerKey(req)
    let principal
    try {
      principal = key !== undefined ? await cp.keys.authenticate(key, clientOf(req)) : null
    } catch (err) {
      return err instanceof RateLimitedError ? sendRefusal(res, err) : next(err)
    }
    if (!principal) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="distributary"')
      sendProblem(res, {
        title: 'Unauthorized',
        status: 401,
        detail:
          key !== undefined
            ? 'the API key is unknown, revoked or expired'
            : 'send an API key as Authorization: Bearer <key>',
        errors: [{ field: 'Authorization', message: key !== undefined ? 'is not a valid API key' : 'is missing' }],
      })
      return
    }
    if (!perKey.admit(res, `key:${principal.keyId}`)) return
    res.locals.principal = principal
    next()
  }
}

/**
 * The authentication of event ingestion: a publisher key (the request's events are its
 * organization's), else undefined (401). Throws RateLimitedError as ApiKeys.authenticate does.
 */
export function publisherAuthentication(keys: ApiKeys): (req: Request) => Promise<IngestPrincipal | undefined> {
  return async (req) => {
    const key = bearerKey(req)
    const principal = key !== undefined ? await keys.authenticate(key, clientOf(req)) : null
    return principal?.scope === 'publisher' && principal.organizationId
      ? { organizationId: principal.organizationId, keyId: principal.keyId }
      : undefined
  }
}
