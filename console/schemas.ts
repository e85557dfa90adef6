/**
 * Schemas: the registry's subjects the key may read (the registry's own rules,
 * control-plane/registry-access.ts), each with its versions and compatibility level, a diff between
 * two versions (fields added, removed or changed, for Avro records; the text otherwise), and which
 * visible subscriptions pin which version. And the event catalog page.
 */
import type { Router } from 'express'
import { pinsOf } from '../control-plane/schema-pins.ts'
import { NotFoundError, RequestInvalidError } from '../control-plane/errors.ts'
import { ALL_TOPICS, valueSubject } from '../schemas/topics.ts'
import { catalogPage } from './catalog.ts'
import type { Ctx, PageHandler, RegistryReader } from './context.ts'
import { html, options, query, selectField, table, type Html } from './html.ts'

type Mount = (h: PageHandler) => import('express').RequestHandler

async function registryFor(ctx: Ctx): Promise<{ reg: RegistryReader; canRead: (s: string) => boolean } | null> {
  const r = ctx.deps.registry
  const reg = r?.reader() ?? null
  if (!r || !reg) return null
  const principal = await r.principalOf(ctx.principal)
  return { reg, canRead: (s) => principal.canRead(s) }
}

const unavailable = {
  page: html`<p>The schema registry is not ready yet; try again in a moment.</p>`,
  title: 'Schemas',
  current: '/console/schemas',
  status: 503,
}

/** The visible subscriptions' pins of a value subject: subscription name → version. */
async function pinsOfSubject(ctx: Ctx, subject: string): Promise<Array<{ id: string; name: string; version: number }>> {
  const topic = ALL_TOPICS.find((t) => valueSubject(t.name) === subject)
  if (!topic) return []
  const subs = (await ctx.deps.cp.listSubscriptions(ctx.principal, {}, { limit: 200 })).items
  return subs.flatMap((s) =>
    Object.entries(pinsOf(s))
      .filter(([t]) => topic.eventTypes.includes(t))
      .map(([, version]) => ({ id: s._id, name: s.name, version })),
  )
}

/** "stock (v2), erp (v3)": the subscriptions pinning a subject's versions (linked on the subject's page). */
const pinList = (pins: Array<{ id: string; name: string; version: number }>, links: boolean) =>
  pins.map((p, i) => {
    const name = links ? html`<a href="/console/subscriptions/${p.id}">${p.name}</a>` : p.name
    return html`${i > 0 ? ', ' : ''}${name} (v${p.version})`
  })

async function compatibility(reg: RegistryReader, subject: string): Promise<string> {
  try {
    return (
      await reg.get<{ compatibilityLevel: string }>(`/config/${encodeURIComponent(subject)}?defaultToGlobal=true`)
    ).compatibilityLevel
  } catch {
    return (await reg.get<{ compatibilityLevel: string }>('/config').catch(() => ({ compatibilityLevel: 'unknown' })))
      .compatibilityLevel
  }
}

const list: PageHandler = async (ctx) => {
  const r = await registryFor(ctx)
  if (!r) return unavailable
  const subjects = (await r.reg.get<string[]>('/subjects')).filter(r.canRead).sort()
  const rows = await Promise.all(
    subjects.map(async (s) => {
      const versions = await r.reg.get<number[]>(`/subjects/${encodeURIComponent(s)}/versions`)
      const pins = await pinsOfSubject(ctx, s)
      return html`<tr>
        <td><a href="/console/schemas/subject${query({ subject: s })}">${s}</a></td>
        <td class="num">${versions.length}</td>
        <td class="num">${versions.at(-1) ?? '–'}</td>
        <td>${await compatibility(r.reg, s)}</td>
        <td>${pins.length === 0 ? html`<span class="muted">none</span>` : pinList(pins, false)}</td>
      </tr>`
    }),
  )
  const page = table(
    'Subjects this key may read',
    ['Subject', 'Versions', 'Latest', 'Compatibility', 'Pinned by'],
    rows,
    { empty: 'No subject visible to this key.' },
  )
  return { page, title: 'Schemas', current: '/console/schemas' }
}

interface AvroField {
  name: string
  type: unknown
  default?: unknown
  doc?: string
}

/** Fields added, removed or changed between two Avro record schemas (null: not both records). */
export function avroFieldDiff(
  a: string,
  b: string,
): Array<{ field: string; change: 'added' | 'removed' | 'changed'; from?: string; to?: string }> | null {
  let x: { type?: string; fields?: AvroField[] }
  let y: { type?: string; fields?: AvroField[] }
  try {
    x = JSON.parse(a) as typeof x
    y = JSON.parse(b) as typeof y
  } catch {
    return null
  }
  if (x.type !== 'record' || y.type !== 'record' || !x.fields || !y.fields) return null
  const text = (f: AvroField) =>
    `${JSON.stringify(f.type)}${f.default !== undefined ? ` = ${JSON.stringify(f.default)}` : ''}`
  const before = new Map(x.fields.map((f) => [f.name, f]))
  const after = new Map(y.fields.map((f) => [f.name, f]))
  const out: Array<{ field: string; change: 'added' | 'removed' | 'changed'; from?: string; to?: string }> = []
  for (const [name, f] of before) {
    const g = after.get(name)
    if (!g) out.push({ field: name, change: 'removed', from: text(f) })
    else if (text(f) !== text(g)) out.push({ field: name, change: 'changed', from: text(f), to: text(g) })
  }
  for (const [name, g] of after) if (!before.has(name)) out.push({ field: name, change: 'added', to: text(g) })
  return out
}

const subjectPage: PageHandler = async (ctx) => {
  const r = await registryFor(ctx)
  if (!r) return unavailable
  const subject = ctx.query.subject ?? ''
  // a subject the key may not read looks like one that does not exist
  if (!r.canRead(subject)) throw new NotFoundError('subject')
  const enc = encodeURIComponent(subject)
  const versions = await r.reg.get<number[]>(`/subjects/${enc}/versions`).catch(() => {
    throw new NotFoundError('subject')
  })
  const num = (s: string | undefined, d: number) => (s === undefined || s === '' ? d : Number(s))
  const latest = versions.at(-1) ?? 1
  const from = num(ctx.query.from, versions.at(-2) ?? latest)
  const to = num(ctx.query.to, latest)
  if (!versions.includes(from) || !versions.includes(to))
    throw new RequestInvalidError([
      { field: versions.includes(from) ? 'to' : 'from', message: `must be one of the versions ${versions.join(', ')}` },
    ])
  const schemaOf = async (v: number) => (await r.reg.get<{ schema: string }>(`/subjects/${enc}/versions/${v}`)).schema
  const [a, b] = await Promise.all([schemaOf(from), schemaOf(to)])
  const diff = avroFieldDiff(a, b)
  const pins = await pinsOfSubject(ctx, subject)
  const select = (name: string, label: string, value: number) =>
    selectField(
      `d-${name}`,
      name,
      label,
      options(versions.map(String), String(value), (v) => `v${v}`),
    )
  let body: Html
  if (diff === null)
    body = html`<div class="diff">
      <pre>${a}</pre>
      <pre>${b}</pre>
    </div>`
  else if (diff.length === 0) body = html`<p>No field differs between v${from} and v${to}.</p>`
  else {
    body = table(
      `Fields from v${from} to v${to}`,
      ['Field', 'Change', `v${from}`, `v${to}`],
      diff.map(
        (d) =>
          html`<tr class="diff-${d.change}">
            <td><code>${d.field}</code></td>
            <td>${d.change}</td>
            <td><code>${d.from ?? ''}</code></td>
            <td><code>${d.to ?? ''}</code></td>
          </tr>`,
      ),
    )
  }
  const page = html`<p><a href="/console/schemas">← Schemas</a></p>
    <dl class="facts">
      <dt>Versions</dt>
      <dd>${versions.map((v) => `v${v}`).join(', ')}</dd>
      <dt>Compatibility</dt>
      <dd>${await compatibility(r.reg, subject)}</dd>
      <dt>Pinned by</dt>
      <dd>${pins.length === 0 ? 'no visible subscription' : pinList(pins, true)}</dd>
    </dl>
    <form method="get" action="/console/schemas/subject" class="filters card">
      <input
        type="hidden"
        name="subject"
        value="${subject}"
      />${select('from', 'From version', from)}${select('to', 'To version', to)}<button type="submit">Compare</button>
    </form>
    ${body}`
  return { page, title: subject, current: '/console/schemas' }
}

export function mountSchemaPages(r: Router, h: Mount): void {
  r.get('/schemas', h(list))
  r.get('/schemas/subject', h(subjectPage))
  r.get('/catalog', h(catalogPage))
}
