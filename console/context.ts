/**
 * What every console page handler gets and returns, and the wrapper that turns the control plane's
 * refusals into pages: NotFound → the 404 page (an id of another organization looks exactly like an
 * id that does not exist), Forbidden → 403, a store outage → 503. Field errors (422) are the forms'
 * business: they re-render with the errors beside the fields.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Logger } from '../common/logger.ts'
import { isStoreUnavailable, STORE_RETRY_AFTER_SECONDS } from '../common/store-errors.ts'
import { ConflictError, ForbiddenError, NotFoundError, RequestInvalidError } from '../control-plane/errors.ts'
import type { ControlPlane } from '../control-plane/service.ts'
import type { SourceRegistry } from '../control-plane/sources.ts'
import type { Principal } from '../control-plane/types.ts'
import { html, type Html } from './html.ts'
import { layout, type Frame } from './layout.ts'
import type { Session } from './sessions.ts'

export interface ConsoleDeps {
  cp: ControlPlane
  sources: SourceRegistry
  logger: Logger
  /** The schema registry (absent: the schemas page says there is none to show). */
  registry?: ConsoleRegistry
}

/**
 * The schema registry as the platform's own client reads it (null while the contracts are not ready),
 * and what a principal may read there: the registry's own rules (control-plane/registry-access.ts).
 */
export interface ConsoleRegistry {
  reader(): RegistryReader | null
  principalOf(p: Principal): Promise<{ canRead(subject: string): boolean }>
}

export interface RegistryReader {
  get<T>(path: string): Promise<T>
}

export interface Ctx {
  req: Request
  res: Response
  session: Session
  principal: Principal
  deps: ConsoleDeps
  /** The request's form fields or query (strings only; repeated fields as arrays). */
  form: Record<string, string | string[] | undefined>
  query: Record<string, string | undefined>
  /** The route's parameters (:id, :eventId). */
  params: Record<string, string>
}

/** A full page, a fragment (htmx), a redirect (after a form post: 303), or an answer already sent. */
export type Reply =
  | { page: Html; title: string; current?: string; status?: number }
  | { fragment: Html; status?: number }
  | { redirect: string }
  | { sent: true }

export type PageHandler = (ctx: Ctx) => Promise<Reply>

export function sendPage(res: Response, frame: Frame, body: Html, status = 200): void {
  res.status(status).type('html').send(layout(frame, body))
}

export function errorPage(
  res: Response,
  session: Session | null,
  status: number,
  title: string,
  message: string,
): void {
  const body = html`<p>${message}</p>
    <p><a href="/console/">Back to the overview</a></p>`
  sendPage(
    res,
    { title, principal: session?.principal, organization: session?.organizationName, csrf: session?.csrf },
    body,
    status,
  )
}

export function handle(deps: ConsoleDeps, handler: PageHandler): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const session = res.locals.consoleSession as Session
    const ctx: Ctx = {
      req,
      res,
      session,
      principal: session.principal,
      deps,
      form: (req.method === 'GET' ? req.query : (req.body ?? {})) as Ctx['form'],
      // one value per name: a repeated query parameter is ignored rather than taken as a list
      query: Object.fromEntries(Object.entries(req.query).filter(([, v]) => typeof v === 'string')) as Ctx['query'],
      params: { ...(req.params as Record<string, string>) },
    }
    try {
      const reply = await handler(ctx)
      if ('sent' in reply) return
      if ('redirect' in reply) {
        // htmx follows a 303 itself and would swap the next page into the element: it navigates on HX-Redirect
        if (isHtmx(req)) return void res.setHeader('HX-Redirect', reply.redirect).status(204).end()
        return res.redirect(303, reply.redirect)
      }
      if ('fragment' in reply)
        return void res
          .status(reply.status ?? 200)
          .type('html')
          .send(reply.fragment.text)
      sendPage(
        res,
        {
          title: reply.title,
          principal: session.principal,
          organization: session.organizationName,
          csrf: session.csrf,
          ...(reply.current ? { current: reply.current } : {}),
        },
        reply.page,
        reply.status ?? 200,
      )
    } catch (err) {
      if (err instanceof NotFoundError)
        return errorPage(
          res,
          session,
          404,
          'Not found',
          `There is no ${err.what.replace(/ not found$/, '')} here, or it is not yours to see.`,
        )
      if (err instanceof ForbiddenError) return errorPage(res, session, 403, 'Not allowed', err.message)
      if (err instanceof ConflictError || err instanceof RequestInvalidError)
        return errorPage(res, session, err instanceof ConflictError ? 409 : 422, 'Refused', err.message)
      if (isStoreUnavailable(err)) {
        res.setHeader('Retry-After', String(STORE_RETRY_AFTER_SECONDS))
        return errorPage(
          res,
          session,
          503,
          'Unavailable',
          "The platform's store is unreachable for a moment; nothing was changed. Try again shortly.",
        )
      }
      next(err)
    }
  }
}

/** A form field as one string ('' when absent). */
export const field = (form: Ctx['form'], name: string): string => {
  const v = form[name]
  return (Array.isArray(v) ? v[0] : v)?.trim() ?? ''
}

/** A form field that may repeat (checkboxes), as a list. */
export const fields = (form: Ctx['form'], name: string): string[] => {
  const v = form[name]
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((s) => s.trim()).filter((s) => s !== '')
}

/** Whether this request came from htmx (a fragment is wanted, not a page). */
export const isHtmx = (req: Request): boolean => req.get('HX-Request') === 'true'

/** A choice from the query: one of `allowed`, or none when absent or empty; anything else a 422 naming it. */
export function queryChoice<T extends string>(ctx: Ctx, name: string, allowed: readonly T[]): T | undefined {
  const v = ctx.query[name]
  if (v === undefined || v === '') return undefined
  if (!allowed.includes(v as T))
    throw new RequestInvalidError([{ field: name, message: `must be one of ${allowed.join(', ')}` }])
  return v as T
}

/** The session's CSRF token as a form's hidden field. */
export const csrfField = (ctx: Ctx): Html => html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
