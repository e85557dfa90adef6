/**
 * Subscription pages: the list (with each connector's state, lag and freshness, refreshed every 2 s),
 * one subscription (its settings as the API shows them to this caller, status, replay and its
 * progress, pause/resume/restart, webhook secret rotation), and the create form. Every read and change
 * is the control plane's operation under the session's principal, as the management API calls it.
 */
import type { Router } from 'express'
import { connectorStatusView, subscriptionViewFor } from '../api/management/http.ts'
import { grantAccepts } from '../control-plane/entitlements.ts'
import { ConflictError, RequestInvalidError, type FieldError } from '../control-plane/errors.ts'
import type { SubscriptionInput } from '../control-plane/subscriptions.ts'
import { eventTypesOf } from '../schemas/topics.ts'
import type { ConnectorDoc, Principal, SubscriptionDoc } from '../control-plane/types.ts'
import { field, fields, type Ctx, type PageHandler, type Reply } from './context.ts'
import {
  badge,
  choice,
  errorSummary,
  fieldErrors,
  html,
  options,
  secretNotice,
  thead,
  time,
  type Html,
} from './html.ts'
import { freshness, poll, publishersOf, replayProgress, statusPanel } from './status.ts'
import { checkAgainstSchema } from './validate.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

/** What the key's scope may change (the control plane checks it again; this only hides what it would refuse). */
export const canChange = (p: Principal, sub: { partnerId: string }): boolean =>
  p.scope === 'admin' || (p.scope === 'partner' && p.organizationId === sub.partnerId)

async function connectorOf(ctx: Ctx, id: string): Promise<ConnectorDoc> {
  return ctx.deps.cp.getConnector(ctx.principal, id)
}

function rows(subs: SubscriptionDoc[], connectors: Map<string, ConnectorDoc>, p: Principal): Html {
  return html`<tbody id="subscription-rows" ${poll('/console/subscriptions/rows')}>
    ${subs.map((s) => {
      const c = connectors.get(s._id)
      const st = c ? connectorStatusView(c, p) : null
      return html`<tr>
        <td><a href="/console/subscriptions/${s._id}">${s.name}</a></td>
        <td>${s.eventTypes.join(', ')}</td>
        <td>${s.sink.type}</td>
        <td>${badge(st?.state ?? 'unassigned')}</td>
        <td class="num">${st?.lag ?? '–'}</td>
        <td>${freshness(c ?? null).text}</td>
      </tr>`
    })}${
      subs.length === 0
        ? html`<tr>
            <td colspan="6" class="muted">No subscriptions yet.</td>
          </tr>`
        : ''
    }
  </tbody>`
}

async function listData(ctx: Ctx): Promise<{ subs: SubscriptionDoc[]; connectors: Map<string, ConnectorDoc> }> {
  const subs = (await ctx.deps.cp.listSubscriptions(ctx.principal, {}, { limit: 200 })).items
  const connectors = new Map(
    (await ctx.deps.cp.listConnectors(ctx.principal, { limit: 200 })).items.map((c) => [c._id, c]),
  )
  return { subs, connectors }
}

const list: PageHandler = async (ctx) => {
  const { subs, connectors } = await listData(ctx)
  const create =
    ctx.principal.scope !== 'publisher'
      ? html`<p><a class="button" href="/console/subscriptions/new">New subscription</a></p>`
      : ''
  const page = html`${create}
    <div class="table-wrap">
      <table>
        <caption>
          Subscriptions and their delivery
        </caption>
        ${thead(['Name', 'Event types', 'Sink', 'State', 'Lag', 'Freshness'])} ${rows(subs, connectors, ctx.principal)}
      </table>
    </div>`
  return { page, title: 'Subscriptions', current: '/console/subscriptions' }
}

const listRows: PageHandler = async (ctx) => {
  const { subs, connectors } = await listData(ctx)
  return { fragment: rows(subs, connectors, ctx.principal) }
}

function sinkFacts(view: Record<string, unknown>): Html {
  const sink = view.sink as Record<string, unknown>
  return html`${Object.entries(sink).map(
    ([k, v]) =>
      html`<dt>sink.${k}</dt>
        <dd><code>${typeof v === 'string' ? v : JSON.stringify(v)}</code></dd>`,
  )}`
}

async function detailPage(ctx: Ctx, notice?: Html): Promise<Reply> {
  const { cp } = ctx.deps
  const id = ctx.params.id!
  const sub = await cp.getSubscription(ctx.principal, id)
  const c = await connectorOf(ctx, id)
  const view = subscriptionViewFor(ctx.principal, cp)(sub) as Record<string, unknown>
  const csrf = html`<input type="hidden" name="_csrf" value="${ctx.session.csrf}" />`
  const mine = canChange(ctx.principal, sub)
  const action = (name: string, label: string) =>
    html`<form method="post" action="/console/subscriptions/${id}/state" class="inline">
      ${csrf}<input type="hidden" name="action" value="${name}" /><button type="submit">${label}</button>
    </form>`
  const rotate =
    sub.sink.type === 'webhook'
      ? html`<form method="post" action="/console/subscriptions/${id}/rotate-secret" class="inline">
          ${csrf}<button type="submit">Rotate webhook secret</button>
        </form>`
      : ''
  const actions = mine
    ? html`<section class="card">
        <h2>Actions</h2>
        <div class="actions">
          ${c.desiredState === 'paused' ? action('resume', 'Resume') : action('pause', 'Pause')}
          ${action('restart', 'Restart')} ${rotate}
        </div>
        <form method="post" action="/console/subscriptions/${id}/replay" class="stack">
          ${csrf}
          <label for="replay-from">Replay from (UTC)</label>
          <input id="replay-from" name="from" type="datetime-local" step="1" required aria-describedby="replay-help" />
          <p id="replay-help" class="help">
            Delivers again everything published since this time; the progress shows below.
          </p>
          <button type="submit">Replay</button>
        </form>
        <form method="post" action="/console/subscriptions/${id}/test" class="stack">
          ${csrf}
          <label for="test-type">Event type of the test event</label>
          <select id="test-type" name="eventType" aria-describedby="test-help">
            ${options(eventTypesOf(sub.eventTypes), '')}
          </select>
          <p id="test-help" class="help">
            Sends the example of this event type, marked as a test, also while paused; its attempts show below.
          </p>
          <button type="submit">Send a test event</button>
        </form>
      </section>`
    : ''
  const page = html`${notice ?? ''}
    <p>
      <a href="/console/subscriptions/${id}/deliveries">Deliveries</a> ·
      <a href="/console/subscriptions/${id}/deliveries?status=dead">Dead letters</a>
    </p>
    ${statusPanel(c, sub, await publishersOf(ctx, sub), ctx.principal)} ${replayProgress(c, id)} ${actions}
    <section class="card">
      <h2>Settings</h2>
      <dl class="facts">
        <dt>Id</dt>
        <dd><code>${sub._id}</code></dd>
        <dt>Partner</dt>
        <dd><code>${sub.partnerId}</code></dd>
        <dt>Event types</dt>
        <dd>${sub.eventTypes.join(', ')}</dd>
        <dt>Start from</dt>
        <dd>${sub.startFrom}</dd>
        ${sinkFacts(view)}
        ${
          view.fields
            ? html`<dt>Fields</dt>
                <dd>${(view.fields as string[]).join(', ')}</dd>`
            : ''
        }
        <dt>Pinned versions</dt>
        <dd>
          ${
            Object.entries(view.schemaVersions as Record<string, number>)
              .map(([t, v]) => `${t} v${v}`)
              .join(', ') || 'latest'
          }
        </dd>
        <dt>Created</dt>
        <dd>${time(sub.createdAt)}</dd>
      </dl>
    </section>`
  return { page, title: `Subscription ${sub.name}`, current: '/console/subscriptions' }
}

const detail: PageHandler = (ctx) => detailPage(ctx)

const status: PageHandler = async (ctx) => {
  const id = ctx.params.id!
  const sub = await ctx.deps.cp.getSubscription(ctx.principal, id)
  return { fragment: statusPanel(await connectorOf(ctx, id), sub, await publishersOf(ctx, sub), ctx.principal) }
}

const replayStatus: PageHandler = async (ctx) => ({
  fragment: replayProgress(await connectorOf(ctx, ctx.params.id!), ctx.params.id!),
})

const setState: PageHandler = async (ctx) => {
  const id = ctx.params.id!
  const a = field(ctx.form, 'action')
  if (a === 'pause' || a === 'resume')
    await ctx.deps.cp.setDesiredState(ctx.principal, id, a === 'pause' ? 'paused' : 'running')
  else if (a === 'restart') await ctx.deps.cp.restartConnector(ctx.principal, id)
  else throw new RequestInvalidError([{ field: 'action', message: 'must be pause, resume or restart' }])
  return { redirect: `/console/subscriptions/${id}` }
}

const replay: PageHandler = async (ctx) => {
  const id = ctx.params.id!
  const from = field(ctx.form, 'from')
  const at = new Date(/Z$|[+-]\d\d:\d\d$/.test(from) ? from : `${from}Z`)
  if (from === '' || Number.isNaN(at.getTime()))
    throw new RequestInvalidError([{ field: 'from', message: 'must be a date and time' }])
  await ctx.deps.cp.resetConnector(ctx.principal, id, 'timestamp', at)
  return { redirect: `/console/subscriptions/${id}#replay` }
}

const rotateSecret: PageHandler = async (ctx) => {
  const { webhookSecret } = await ctx.deps.cp.rotateWebhookSecret(ctx.principal, ctx.params.id!, 86400)
  return detailPage(
    ctx,
    secretNotice(
      webhookSecret,
      'The new webhook secret (the previous one keeps signing for 24 hours)',
      'webhook-secret',
    ),
  )
}

const sendTest: PageHandler = async (ctx) => {
  const id = ctx.params.id!
  const req = await ctx.deps.cp.requestTestEvent(ctx.principal, id, { eventType: field(ctx.form, 'eventType') })
  return { redirect: `/console/subscriptions/${id}/tests/${req._id}` }
}

/** A test event as it goes: pending, then its outcome and attempts (polling until done). */
async function testProgress(ctx: Ctx): Promise<Html> {
  const { cp } = ctx.deps
  const id = ctx.params.id!
  const req = await cp.getRetryRequest(ctx.principal, id, ctx.params.requestId!)
  const d = req.eventId ? await cp.deliveries.get(id, req.eventId) : null
  const done = req.status === 'done' && (d === null || d.status === 'delivered' || d.status === 'dead')
  const attempts = (d?.attempts ?? []).map(
    (a) =>
      html`<li>
        ${time(a.at)}: ${a.statusCode ?? 'no answer'} in ${a.durationMs} ms${a.error ? html` · ${a.error}` : ''}
        ${a.responseExcerpt ? html`<br /><code>${a.responseExcerpt}</code>` : ''}
      </li>`,
  )
  return html`<section
    id="test"
    class="card"
    aria-live="polite"
    ${done ? '' : poll(`/console/subscriptions/${id}/tests/${req._id}/status`)}
  >
    <h2>Test event ${req.eventType ?? ''}</h2>
    <p data-test-status="${req.status === 'done' ? (d?.status ?? 'done') : 'pending'}">
      ${
        req.status === 'done'
          ? html`${badge(d?.status ?? 'done')} ${req.outcome === d?.status ? '' : (req.outcome ?? '')}`
          : html`${badge('pending')} waiting for the worker that holds the subscription`
      }
    </p>
    <p class="muted">Event id <code>${req.eventId ?? ''}</code>, requested ${time(req.requestedAt)}.</p>
    ${
      attempts.length > 0
        ? html`<ol class="attempts">
            ${attempts}
          </ol>`
        : ''
    }
  </section>`
}

const testPage: PageHandler = async (ctx) => ({
  page: html`${await testProgress(ctx)}
    <p><a href="/console/subscriptions/${ctx.params.id!}">Back to the subscription</a></p>`,
  title: 'Test event',
  current: '/console/subscriptions',
})

const testStatus: PageHandler = async (ctx) => ({ fragment: await testProgress(ctx) })

// ------------------------------------------------------------------------------------ create

interface FormState {
  values: Record<string, string | string[]>
  errors: FieldError[]
}

async function grantedTypes(ctx: Ctx): Promise<string[]> {
  const grants = (await ctx.deps.cp.listGrants(ctx.principal, {}, { limit: 200 })).items
  return [...new Set(grants.flatMap((g) => grantAccepts(g)))].sort()
}

async function createForm(ctx: Ctx, state: FormState, status = 200): Promise<Reply> {
  const v = (k: string) => (typeof state.values[k] === 'string' ? (state.values[k] as string) : '')
  const chosen = new Set((state.values.eventTypes as string[] | undefined) ?? [])
  const types = await grantedTypes(ctx)
  const e = state.errors
  const errorsOf = (name: string) => fieldErrors(e, name.replace(/^sink_/, 'sink.'), name)
  const on = (t: string) => chosen.has(t)
  const sinkLabel = (t: string) => (t === 'rest' ? 'REST' : t === 'mongodb' ? 'MongoDB' : 'Webhook')
  const input = (name: string, label: string, type = 'text', help?: string) =>
    html`<label for="${name}">${label}</label
      ><input
        id="${name}"
        name="${name}"
        type="${type}"
        value="${v(name)}"
        ${help ? html` aria-describedby="${name}-help"` : ''}
      />${help ? html`<p class="help" id="${name}-help">${help}</p>` : ''}${errorsOf(name)}`
  const sinkType = v('sink_type') || 'webhook'
  const page = html`${errorSummary(e)}
    <form method="post" action="/console/subscriptions" class="card stack">
      <input type="hidden" name="_csrf" value="${ctx.session.csrf}" />
      ${ctx.principal.scope === 'admin' ? input('partnerId', 'Partner id (admin keys name the partner)') : ''}
      ${input('name', 'Name', 'text', 'Lower case letters, digits and dashes, e.g. stock-hooks.')}
      <fieldset>
        <legend>Event types (those your accepted grants cover)</legend>
        ${types.length === 0 ? html`<p class="muted">No accepted grant yet: accept a publisher's grant first.</p>` : ''}
        ${types.map((t, i) => choice('checkbox', { id: `et-${i}`, name: 'eventTypes', value: t, label: t, on: on(t) }))}
        ${fieldErrors(e, 'eventTypes', 'eventTypes')}
      </fieldset>
      <fieldset>
        <legend>Sink</legend>
        ${['webhook', 'rest', 'mongodb'].map((t) =>
          choice('radio', { id: `sink-${t}`, name: 'sink_type', value: t, label: sinkLabel(t), on: sinkType === t }),
        )}
        ${input('sink_url', 'URL (webhook and REST)', 'url', 'REST URLs may hold {key}, {eventId} or {value.<field>}.')}
        <label for="sink_method">Method (REST)</label
        ><select id="sink_method" name="sink_method">
          ${options(['PUT', 'POST', 'PATCH'], v('sink_method'))}
        </select>
        ${input('sink_connectionString', 'Connection string (MongoDB)', 'password')}
        ${input('sink_database', 'Database (MongoDB)')} ${input('sink_collection', 'Collection (MongoDB)')}
        ${fieldErrors(e, 'sink', 'sink')}
      </fieldset>
      <label for="startFrom">Start from</label
      ><select id="startFrom" name="startFrom">
        ${options(['latest', 'earliest', 'snapshot'], v('startFrom'))}
      </select>
      ${input('fields', 'Fields (optional, comma-separated)', 'text', 'Only these fields, e.g. sku, available.')}
      <button type="submit">Create subscription</button>
    </form>`
  return { page, title: 'New subscription', current: '/console/subscriptions', status }
}

/** The API's request body from the form (only what the form sets). */
export function subscriptionBody(form: Ctx['form']): SubscriptionInput & { partnerId?: string } {
  const type = field(form, 'sink_type') || 'webhook'
  const sink =
    type === 'rest'
      ? { type: 'rest' as const, url: field(form, 'sink_url'), method: (field(form, 'sink_method') || 'PUT') as 'PUT' }
      : type === 'mongodb'
        ? {
            type: 'mongodb' as const,
            connectionString: field(form, 'sink_connectionString'),
            database: field(form, 'sink_database'),
            collection: field(form, 'sink_collection'),
          }
        : { type: type as 'webhook', url: field(form, 'sink_url') }
  const list = field(form, 'fields')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  const partnerId = field(form, 'partnerId')
  return {
    ...(partnerId ? { partnerId } : {}),
    name: field(form, 'name'),
    eventTypes: fields(form, 'eventTypes'),
    sink,
    startFrom: (field(form, 'startFrom') || 'latest') as 'latest',
    ...(list.length > 0 ? { fields: list } : {}),
  }
}

const newForm: PageHandler = (ctx) => createForm(ctx, { values: {}, errors: [] })

const create: PageHandler = async (ctx) => {
  const body = subscriptionBody(ctx.form)
  try {
    checkAgainstSchema('SubscriptionCreate', body)
    const { subscription, webhookSecret } = await ctx.deps.cp.createSubscription(ctx.principal, body)
    ctx.params.id = subscription._id
    return detailPage(
      ctx,
      html`<div class="notice notice-ok" role="status"><p>Subscription ${subscription.name} created.</p></div>
        ${webhookSecret ? secretNotice(webhookSecret, 'Its webhook secret', 'webhook-secret') : ''}`,
    )
  } catch (err) {
    if (!(err instanceof RequestInvalidError || err instanceof ConflictError)) throw err
    const errors =
      err instanceof RequestInvalidError ? err.errors : [{ field: err.field ?? 'body', message: err.message }]
    const values = Object.fromEntries(
      Object.entries(ctx.form).filter(([k]) => k !== '_csrf' && k !== 'sink_connectionString'),
    ) as FormState['values']
    values.eventTypes = fields(ctx.form, 'eventTypes')
    return createForm(ctx, { values, errors }, 422)
  }
}

export function mountSubscriptionPages(r: Router, h: Mount): void {
  r.route('/subscriptions').get(h(list)).post(h(create))
  r.get('/subscriptions/rows', h(listRows))
  r.get('/subscriptions/new', h(newForm))
  r.get('/subscriptions/:id', h(detail))
  r.get('/subscriptions/:id/status', h(status))
  r.route('/subscriptions/:id/replay').get(h(replayStatus)).post(h(replay))
  r.post('/subscriptions/:id/state', h(setState))
  r.post('/subscriptions/:id/rotate-secret', h(rotateSecret))
  r.post('/subscriptions/:id/test', h(sendTest))
  r.get('/subscriptions/:id/tests/:requestId', h(testPage))
  r.get('/subscriptions/:id/tests/:requestId/status', h(testStatus))
}
