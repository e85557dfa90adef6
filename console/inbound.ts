/**
 * Inbound connectors (publishers and admins): the endpoints a publisher's CRM calls with its decisions on deals
 * (docs/deals.md), each with the URL to give the CRM, its tolerance and the state of its signing secrets; create one
 * (its secret shown once), rotate its secret (the previous one accepted for 24 hours) and delete one. The forms are
 * checked against the API's request schemas and call the same service as POST /v1/inbound-connectors.
 */
import type { Router } from 'express'
import { inboundView } from '../api/management/deals.ts'
import { ConflictError, ForbiddenError, RequestInvalidError, type FieldError } from '../control-plane/errors.ts'
import type { InboundConnectorDoc } from '../control-plane/deals/types.ts'
import { field, type Ctx, type PageHandler } from './context.ts'
import { errorSummary, fieldErrors, html, secretNotice, table, time, type Html } from './html.ts'
import { schemaErrors } from './validate.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

/** How long a rotated-out secret stays accepted when rotated from the console (the API lets the caller choose). */
const OVERLAP_SECONDS = 86_400

const TOLERANCE_HELP = 'How old a signed call may be (default 300).'

interface FormState {
  values: Record<string, string>
  errors: FieldError[]
}

function inboundOf(ctx: Ctx) {
  if (ctx.principal.scope === 'partner')
    throw new ForbiddenError('inbound connectors belong to publishers (their CRM decides on deals)')
  return ctx.deps.cp.registry.inbound
}

function row(ctx: Ctx, c: InboundConnectorDoc): Html {
  const v = inboundView(c)
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const previous = v.previousSecrets.map(
    (p) => html`<br /><span class="muted">previous one until ${time(p.expiresAt)}</span>`,
  )
  return html`<tr>
    <td>${v.name}</td>
    <td><code>${v.url}</code></td>
    ${ctx.principal.scope === 'admin' ? html`<td><code>${v.publisherId}</code></td>` : ''}
    <td class="num">${v.toleranceSeconds} s</td>
    <td>current${previous}</td>
    <td>${time(v.createdAt)}</td>
    <td>
      <form method="post" action="/console/inbound/${c._id}/rotate-secret" class="inline">
        ${csrf}<button type="submit" aria-label="Rotate secret of ${v.name}">Rotate secret</button>
      </form>
      <form method="post" action="/console/inbound/${c._id}/delete" class="inline">
        ${csrf}<label
          ><input type="checkbox" name="confirm" value="yes" required /> the CRM's calls will be refused</label
        >
        <button type="submit" aria-label="Delete ${v.name}">Delete</button>
      </form>
    </td>
  </tr>`
}

async function page(ctx: Ctx, state: FormState, notice: Html | string = '', status = 200) {
  const list = (await inboundOf(ctx).list(ctx.principal, { limit: 200 })).items
  const admin = ctx.principal.scope === 'admin'
  const columns = ['Name', 'URL the CRM calls', ...(admin ? ['Publisher'] : []), 'Tolerance', 'Secret', 'Created']
  const v = (k: string) => state.values[k] ?? ''
  const e = state.errors
  const input = (name: string, label: string, help: string, type = 'text') =>
    html`<label for="${name}">${label}</label
      ><input id="${name}" name="${name}" type="${type}" value="${v(name)}" aria-describedby="${name}-help" />
      <p class="help" id="${name}-help">${help}</p>
      ${fieldErrors(e, name, name)}`
  return {
    page: html`${notice}${errorSummary(e)}
      ${table(
        "Inbound connectors: each takes the CRM's calls, signed like Standard Webhooks",
        columns,
        list.map((c) => row(ctx, c)),
        { actions: true, empty: 'No inbound connector yet.' },
      )}
      <form method="post" action="/console/inbound" class="card stack">
        <h2>New inbound connector</h2>
        <input type="hidden" name="_csrf" value="${ctx.session.csrf}" />
        ${admin ? input('publisherId', 'Publisher id', 'Admin keys name the publisher it belongs to.') : ''}
        ${input('name', 'Name', 'e.g. salesforce: one line, up to 100 characters.')}
        <label for="mapping">Mapping (JSONata, optional)</label
        ><textarea id="mapping" name="mapping" rows="3" aria-describedby="mapping-help">${v('mapping')}</textarea>
        <p class="help" id="mapping-help">
          From the CRM's body to { dealId, action, reason }; empty: the body already has that shape (docs/deals.md).
        </p>
        ${fieldErrors(e, 'mapping', 'mapping')}
        ${input('toleranceSeconds', 'Tolerance in seconds (optional)', TOLERANCE_HELP, 'number')}
        <button type="submit">Create inbound connector</button>
      </form>`,
    title: 'Inbound connectors',
    current: '/console/inbound',
    status,
  }
}

/** The API's request body from the form (only what the form sets). */
function createBody(form: Ctx['form']): Record<string, unknown> {
  const body: Record<string, unknown> = { name: field(form, 'name') }
  const publisherId = field(form, 'publisherId')
  const mapping = field(form, 'mapping')
  const tolerance = field(form, 'toleranceSeconds')
  if (publisherId) body.publisherId = publisherId
  if (mapping) body.mapping = mapping
  // a number field: not a number stays a string, which the schema then names
  if (tolerance) body.toleranceSeconds = /^\d+$/.test(tolerance) ? Number(tolerance) : tolerance
  return body
}

const create: PageHandler = async (ctx) => {
  const body = createBody(ctx.form)
  try {
    const errors = schemaErrors('InboundConnectorCreate', body)
    if (errors.length > 0) throw new RequestInvalidError(errors)
    const { connector, secret } = await inboundOf(ctx).create(ctx.principal, body as { name: string })
    const notice = html`<div class="notice notice-ok" role="status">
        <p>Inbound connector ${connector.name} created: the CRM calls <code>/v1/inbound/${connector._id}</code>.</p>
      </div>
      ${secretNotice(secret, 'Its signing secret (the CRM signs its calls with it)', 'inbound-secret')}`
    return page(ctx, { values: {}, errors: [] }, notice)
  } catch (err) {
    if (!(err instanceof RequestInvalidError || err instanceof ConflictError)) throw err
    const errors =
      err instanceof RequestInvalidError ? err.errors : [{ field: err.field ?? 'body', message: err.message }]
    const values = Object.fromEntries(
      Object.entries(ctx.form).filter(([k, val]) => k !== '_csrf' && typeof val === 'string'),
    ) as Record<string, string>
    return page(ctx, { values, errors }, '', 422)
  }
}

const rotate: PageHandler = async (ctx) => {
  const { connector, secret } = await inboundOf(ctx).rotateSecret(ctx.principal, ctx.params.id!, OVERLAP_SECONDS)
  return page(
    ctx,
    { values: {}, errors: [] },
    secretNotice(
      secret,
      `The new signing secret of ${connector.name} (the previous one is accepted for 24 hours)`,
      'inbound-secret',
    ),
  )
}

const remove: PageHandler = async (ctx) => {
  if (field(ctx.form, 'confirm') !== 'yes')
    throw new RequestInvalidError([{ field: 'confirm', message: "must be checked: the CRM's calls will be refused" }])
  await inboundOf(ctx).delete(ctx.principal, ctx.params.id!)
  return { redirect: '/console/inbound' }
}

export function mountInboundPages(r: Router, h: Mount): void {
  r.route('/inbound')
    .get(h((ctx) => page(ctx, { values: {}, errors: [] })))
    .post(h(create))
  r.post('/inbound/:id/rotate-secret', h(rotate))
  r.post('/inbound/:id/delete', h(remove))
}
