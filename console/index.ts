/**
 * The web console under /console (docs/console.md): server-rendered pages, htmx for the parts that
 * change (status tables poll every 2 s, buttons swap a row), every asset served from here (htmx from
 * the htmx.org package, console.css from console/assets/), nothing from a CDN.
 *
 * Security, in the order a request meets it: a strict Content-Security-Policy on every answer (no
 * inline script or style, no eval, no framing); the session cookie (sessions.ts); the CSRF token of the
 * session on every POST (a form field `_csrf`, or the `X-CSRF-Token` header htmx sends), 403 without
 * it; then the same control-plane operations the management API calls, under the same principal, so
 * the console shows and changes exactly what the key may (control-plane/visibility.ts).
 */
import path from 'node:path'
import { createRequire } from 'node:module'
import express, { Router, type NextFunction, type Request, type Response } from 'express'
import { RateLimitedError } from '../common/errors.ts'
import { PROJECT_ROOT } from '../common/paths.ts'
import { clientOf } from '../api/rate-limit.ts'
import type { Db } from 'mongodb'
import { errorPage, handle, sendPage, type ConsoleDeps } from './context.ts'
import { html } from './html.ts'
import {
  ConsoleSessions,
  cookie,
  cookiesOf,
  randomToken,
  sameToken,
  SESSION_COOKIE,
  SIGNIN_COOKIE,
  type Session,
} from './sessions.ts'
import { mountPages } from './pages.ts'

export interface ConsoleOptions extends ConsoleDeps {
  db: Db
  /** How long a session lasts (absolute), in seconds. */
  sessionTtlSeconds: number
  /** Cookies Secure on every answer (behind a TLS-terminating proxy); otherwise when the request came over TLS. */
  secureCookies?: boolean
}

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ')

const ASSETS = path.join(PROJECT_ROOT, 'console', 'assets')

function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY)
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Referrer-Policy', 'same-origin')
  res.setHeader('X-Frame-Options', 'DENY')
  next()
}

function signInPage(res: Response, o: { token: string; error?: string; status?: number; secure: boolean }): void {
  res.setHeader('Set-Cookie', cookie(SIGNIN_COOKIE, o.token, { secure: o.secure, maxAgeSeconds: 3600 }))
  res.setHeader('Cache-Control', 'no-store')
  const body = html`${o.error ? html`<div class="notice notice-error" role="alert"><p>${o.error}</p></div>` : ''}
    <form method="post" action="/console/signin" class="card narrow">
      <input type="hidden" name="_csrf" value="${o.token}" />
      <label for="apiKey">API key</label>
      <input
        id="apiKey"
        name="apiKey"
        type="password"
        autocomplete="current-password"
        required
        spellcheck="false"
        aria-describedby="apiKey-help"
      />
      <p id="apiKey-help" class="help">
        A partner, publisher or admin key (<code>dk_…</code>). It is checked once; the browser then holds only a session
        cookie.
      </p>
      <button type="submit">Sign in</button>
    </form>`
  sendPage(res, { title: 'Sign in' }, body, o.status ?? 200)
}

export function consoleRouter(options: ConsoleOptions): Router {
  const sessions = new ConsoleSessions(options.db, options.cp, options.sessionTtlSeconds * 1000)
  // req.secure: TLS to this process (or X-Forwarded-Proto where express's trust proxy is set)
  const secure = (req: Request) => options.secureCookies === true || req.secure
  // the expiry index only speeds the clean-up up: a store that is away now gets it on the next start
  sessions.init().catch((err: unknown) => options.logger.warn('console sessions index not created now', { err }))
  const r = Router()
  r.use(securityHeaders)

  const htmx = path.join(
    path.dirname(createRequire(import.meta.url).resolve('htmx.org/package.json')),
    'dist',
    'htmx.min.js',
  )
  r.get('/assets/htmx.min.js', (_req, res) => res.sendFile(htmx, { maxAge: '1h' }))
  r.use('/assets', express.static(ASSETS, { index: false, fallthrough: false, maxAge: '1h' }))

  r.use(express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 200 }))

  r.get('/signin', (req, res) => signInPage(res, { token: randomToken(), secure: secure(req) }))
  r.post('/signin', async (req, res, next) => {
    const cookies = cookiesOf(req.get('cookie'))
    const body = (req.body ?? {}) as Record<string, unknown>
    if (!sameToken(cookies[SIGNIN_COOKIE], typeof body._csrf === 'string' ? body._csrf : undefined)) {
      return signInPage(res, {
        token: randomToken(),
        secure: secure(req),
        status: 403,
        error: 'The sign-in form expired or did not come from this page; sign in again.',
      })
    }
    const key = typeof body.apiKey === 'string' ? body.apiKey.trim() : ''
    try {
      // the API's verification, with its limits on failed attempts per client address and key prefix
      const principal = key !== '' ? await options.cp.keys.authenticate(key, clientOf(req)) : null
      if (!principal)
        return signInPage(res, {
          token: randomToken(),
          secure: secure(req),
          status: 401,
          error: 'That API key is unknown, revoked or expired.',
        })
      const { id, session } = await sessions.open(principal)
      res.setHeader('Set-Cookie', [
        cookie(SESSION_COOKIE, id, {
          secure: secure(req),
          maxAgeSeconds: (session.expiresAt.getTime() - Date.now()) / 1000,
        }),
        cookie(SIGNIN_COOKIE, '', { secure: secure(req), maxAgeSeconds: 0 }),
      ])
      res.redirect(303, '/console/')
    } catch (err) {
      if (err instanceof RateLimitedError) {
        res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))))
        return signInPage(res, {
          token: randomToken(),
          secure: secure(req),
          status: err.policy ? 429 : 503,
          error: err.message,
        })
      }
      next(err)
    }
  })

  // every other route needs a session
  r.use(async (req, res, next) => {
    try {
      const session = await sessions.find(cookiesOf(req.get('cookie'))[SESSION_COOKIE])
      if (!session) {
        if (req.get('HX-Request') === 'true') {
          res.setHeader('HX-Redirect', '/console/signin')
          return void res.status(401).end()
        }
        return req.method === 'GET'
          ? res.redirect(303, '/console/signin')
          : errorPage(res, null, 401, 'Signed out', 'Your session ended; sign in again.')
      }
      res.locals.consoleSession = session
      res.setHeader('Cache-Control', 'no-store')
      next()
    } catch (err) {
      next(err)
    }
  })

  // the synchronizer token on every state-changing request
  r.use((req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next()
    const session = res.locals.consoleSession as Session
    const sent =
      req.get('X-CSRF-Token') ?? (typeof req.body?._csrf === 'string' ? (req.body._csrf as string) : undefined)
    if (!sameToken(session.csrf, sent))
      return errorPage(
        res,
        session,
        403,
        'Refused',
        'This form did not carry its CSRF token (or the token of another session); reload the page and try again.',
      )
    next()
  })

  r.post('/signout', async (req, res, next) => {
    try {
      await sessions.close(cookiesOf(req.get('cookie'))[SESSION_COOKIE])
      res.setHeader('Set-Cookie', cookie(SESSION_COOKIE, '', { secure: secure(req), maxAgeSeconds: 0 }))
      res.redirect(303, '/console/signin')
    } catch (err) {
      next(err)
    }
  })

  mountPages(r, options, handle)

  r.use((req, res) =>
    errorPage(
      res,
      (res.locals.consoleSession as Session | undefined) ?? null,
      404,
      'Not found',
      `There is no page ${req.path} here.`,
    ),
  )
  r.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: unknown }).status
    const session = (res.locals.consoleSession as Session | undefined) ?? null
    // an asset that does not exist, a body too large or not a form: the client's mistake, said plainly
    if (typeof status === 'number' && status >= 400 && status < 500)
      return errorPage(res, session, status, status === 404 ? 'Not found' : 'Refused', (err as Error).message)
    options.logger.error('console request failed', { method: req.method, path: req.path, err })
    errorPage(
      res,
      (res.locals.consoleSession as Session | undefined) ?? null,
      500,
      'Something went wrong',
      'The request failed; the platform logged why.',
    )
  })
  return r
}

export { ConsoleSessions } from './sessions.ts'
