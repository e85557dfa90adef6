/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) for REST sinks: one process-wide cache of access
 * tokens, keyed by the credentials (token URL, client id and secret, scope, audience), so every
 * subscription using the same credentials shares one token. A token is used until shortly before
 * it expires (`expires_in` minus a margin), concurrent callers wait for the same token request, and
 * a 401 from the partner API invalidates it (once: the sink then fetches a new one and retries).
 *
 * Token endpoint answers, classified like every HTTP call (consumers/http), plus:
 *  - 400/401/403 (invalid_client, invalid_grant, invalid_scope...): the credentials are wrong, a
 *    configuration error of the subscription: PartnerRejectedError (the events dead-letter with the
 *    reason and can be re-delivered once the credentials are fixed). The refusal is remembered for
 *    a few seconds so a backlog does not hammer the token endpoint.
 *  - 408/429/5xx, timeouts, network failures: RetriableError (Retry-After honoured).
 *  - a 2xx without a usable bearer access_token: RetriableError (a broken endpoint, not our data).
 * The token endpoint is called through the shared client, so the URL guard applies to it too.
 * Neither the client secret nor a token ever appears in an error, a report or a log line.
 */
import { createHash } from 'node:crypto'
import { PartnerRejectedError, RetriableError, SyndicationError } from '../../common/errors.ts'
import type { AttemptReport } from '../../connectors/sink/types.ts'
import type { HttpSinkClient } from '../http/client.ts'

export interface OAuth2Credentials {
  tokenUrl: string
  clientId: string
  clientSecret: string
  scope?: string
  audience?: string
  /** How the client authenticates at the token endpoint: HTTP Basic (RFC 6749 §2.3.1, default) or form fields. */
  clientAuth?: 'basic' | 'body'
}

export interface OAuth2TokenCacheOptions {
  /** Refresh this long before the token expires (at most a tenth of its lifetime). */
  refreshBeforeMs?: number
  /** Lifetime assumed when the endpoint gives no expires_in. */
  defaultLifetimeMs?: number
  /** How long a credentials refusal (4xx) is remembered. */
  rejectionCacheMs?: number
  now?: () => number
}

interface Entry {
  token?: string
  /** Epoch ms from which the token is refreshed before use. */
  refreshAt: number
  pending?: Promise<string>
  rejected?: { error: SyndicationError; until: number }
}

/** Thrown by `token()`: the classified error and the report of the token endpoint call. */
export class TokenError extends Error {
  constructor(
    readonly error: SyndicationError,
    readonly report: AttemptReport | undefined,
  ) {
    super(error.message)
  }
}

export class OAuth2TokenCache {
  readonly #entries = new Map<string, Entry>()
  readonly #refreshBeforeMs: number
  readonly #defaultLifetimeMs: number
  readonly #rejectionCacheMs: number
  readonly #now: () => number
  /** Token endpoint calls made (all credentials). */
  requests = 0

  constructor(
    private readonly client: HttpSinkClient,
    options: OAuth2TokenCacheOptions = {},
  ) {
    this.#refreshBeforeMs = options.refreshBeforeMs ?? 30_000
    this.#defaultLifetimeMs = options.defaultLifetimeMs ?? 300_000
    this.#rejectionCacheMs = options.rejectionCacheMs ?? 5_000
    this.#now = options.now ?? Date.now
  }

  /** The cache key of a set of credentials (a digest: the secret is not kept as a key). */
  static keyOf(c: OAuth2Credentials): string {
    return createHash('sha256')
      .update(
        JSON.stringify([
          c.tokenUrl,
          c.clientId,
          c.clientSecret,
          c.scope ?? '',
          c.audience ?? '',
          c.clientAuth ?? 'basic',
        ]),
      )
      .digest('base64url')
  }

  /** A valid access token: cached, or fetched (one request for all concurrent callers). Throws TokenError. */
  async token(c: OAuth2Credentials, timeoutMs: number, eventId: string): Promise<string> {
    const key = OAuth2TokenCache.keyOf(c)
    let entry = this.#entries.get(key)
    if (!entry) this.#entries.set(key, (entry = { refreshAt: 0 }))
    const now = this.#now()
    if (entry.token !== undefined && now < entry.refreshAt) return entry.token
    if (entry.rejected && now < entry.rejected.until) throw new TokenError(entry.rejected.error, undefined)
    if (entry.pending) return entry.pending
    const e = entry
    // no AbortSignal: the request is shared by subscriptions that may stop independently
    const pending = this.#fetch(c, e, timeoutMs, eventId).finally(() => {
      e.pending = undefined
    })
    e.pending = pending
    return pending
  }

  /** The partner refused `token` (401): forget it, unless a newer one replaced it already. */
  invalidate(c: OAuth2Credentials, token: string): void {
    const entry = this.#entries.get(OAuth2TokenCache.keyOf(c))
    if (entry && entry.token === token) {
      entry.token = undefined
      entry.refreshAt = 0
    }
  }

  async #fetch(c: OAuth2Credentials, entry: Entry, timeoutMs: number, eventId: string): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' })
    if (c.scope) form.set('scope', c.scope)
    if (c.audience) form.set('audience', c.audience)
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    }
    if ((c.clientAuth ?? 'basic') === 'basic') {
      // RFC 6749 §2.3.1: client id and secret are form-urlencoded before the Basic encoding
      headers.authorization =
        'Basic ' + Buffer.from(`${formEncode(c.clientId)}:${formEncode(c.clientSecret)}`).toString('base64')
    } else {
      form.set('client_id', c.clientId)
      form.set('client_secret', c.clientSecret)
    }
    this.requests++
    const startedAt = this.#now()
    const { report, error, body } = await this.client.call(
      { method: 'POST', url: c.tokenUrl, headers, body: form.toString(), timeoutMs, keepBody: true },
      eventId,
    )
    const context = { stage: 'oauth2-token', tokenUrl: c.tokenUrl, clientId: c.clientId }
    if (error) {
      const oauthError = oauthErrorOf(report.responseExcerpt)
      let out: SyndicationError = error
      if (error instanceof PartnerRejectedError) {
        out = new PartnerRejectedError(
          `OAuth2 token endpoint refused the client credentials with ` +
            `${error.status}${oauthError ? ` (${oauthError})` : ''}`,
          error.status,
          { ...error.context, ...context, oauthError },
        )
        entry.rejected = { error: out, until: this.#now() + this.#rejectionCacheMs }
      } else {
        out.message = `OAuth2 token endpoint: ${error.message}`
        Object.assign(out.context, context)
      }
      report.message = out.message
      throw new TokenError(out, report)
    }
    let parsed: { access_token?: unknown; token_type?: unknown; expires_in?: unknown }
    try {
      parsed = JSON.parse(body ?? '') as typeof parsed
    } catch {
      parsed = {}
    }
    if (typeof parsed.access_token !== 'string' || parsed.access_token === '') {
      const err = new RetriableError('OAuth2 token endpoint answered without an access_token', undefined, context)
      throw new TokenError(err, { ...report, outcome: 'retriable', code: err.code, message: err.message })
    }
    if (parsed.token_type !== undefined && String(parsed.token_type).toLowerCase() !== 'bearer') {
      const err = new PartnerRejectedError(
        `OAuth2 token endpoint issued a ${String(parsed.token_type)} token; only bearer tokens are supported`,
        report.status ?? 200,
        context,
      )
      throw new TokenError(err, { ...report, outcome: 'rejected', code: err.code, message: err.message })
    }
    const expiresIn = Number(parsed.expires_in)
    const lifetimeMs = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : this.#defaultLifetimeMs
    entry.token = parsed.access_token
    entry.refreshAt = startedAt + lifetimeMs - Math.min(this.#refreshBeforeMs, lifetimeMs / 10)
    entry.rejected = undefined
    return parsed.access_token
  }
}

function formEncode(s: string): string {
  return new URLSearchParams({ s }).toString().slice(2)
}

/** The `error` code of an RFC 6749 §5.2 error answer (e.g. invalid_client), if the excerpt is one. */
function oauthErrorOf(excerpt: string | undefined): string | undefined {
  if (!excerpt) return undefined
  try {
    const e = (JSON.parse(excerpt) as { error?: unknown }).error
    return typeof e === 'string' && /^[\x20-\x7e]{1,64}$/.test(e) ? e : undefined
  } catch {
    return undefined
  }
}
