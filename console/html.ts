/**
 * HTML for the console: a tagged template that escapes every interpolated value unless it is
 * already `Html` (made by this template or `raw`), so a value from the store or a request can never
 * become markup. No inline script or style anywhere (the Content-Security-Policy forbids both):
 * behaviour is htmx attributes, looks are console.css.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
}

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c]!)
}

/** A value as markup: Html as it is, arrays joined, null/undefined/false as nothing, anything else escaped. */
function part(value: unknown): string {
  if (value instanceof Html) return value.text
  if (Array.isArray(value)) return value.map(part).join('')
  if (value === null || value === undefined || value === false) return ''
  return escapeHtml(value)
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!
  return new Html(out)
}

/** Trusted markup (only for constants of this code base). */
export const raw = (text: string): Html => new Html(text)

/** `?a=1&b=2` from the defined values (URL-encoded; escaped again when interpolated into an attribute). */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s === '' ? '' : `?${s}`
}

/** "1.2 s", "3 min", "2 h": how long ago or how long, for people. */
export function age(ms: number): string {
  if (!Number.isFinite(ms)) return '?'
  const abs = Math.abs(ms)
  if (abs < 60_000) return `${(abs / 1000).toFixed(1)} s`
  if (abs < 3_600_000) return `${Math.round(abs / 60_000)} min`
  if (abs < 172_800_000) return `${(abs / 3_600_000).toFixed(1)} h`
  return `${Math.round(abs / 86_400_000)} d`
}

export const iso = (d: Date | string | null | undefined): string =>
  d ? new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z') : ''

/** A <time> element with the ISO instant (machine-readable) and a short readable form. */
export const time = (d: Date | string | null | undefined): Html =>
  d ? html`<time datetime="${iso(d)}">${iso(d).replace('T', ' ')}</time>` : html`<span class="muted">never</span>`

/** A table's column headers, one `<th scope="col">` a label. */
export const columns = (labels: Array<string | Html>): Html[] => labels.map((l) => html`<th scope="col">${l}</th>`)

/** A status word as a badge; its color comes from console.css (`badge-<status>`), its meaning from the word. */
export const badge = (status: string): Html =>
  html`<span class="badge badge-${status.replace(/[^a-z-]/g, '')}">${status}</span>`

export interface FieldErrorView {
  field: string
  message: string
}

/** The errors of one form field (ids let the input point at them with aria-describedby). */
export function fieldErrors(errors: FieldErrorView[], field: string, id: string): Html {
  const mine = errors.filter(
    (e) => e.field === field || e.field.startsWith(`${field}.`) || e.field.startsWith(`${field}[`),
  )
  if (mine.length === 0) return html``
  return html`<p class="field-error" id="${id}-error">
    ${mine.map((e, i) => html`${i > 0 ? '; ' : ''}${e.field}: ${e.message}`)}
  </p>`
}

/** Every error in a list above a form (those no field shows included). */
export function errorSummary(errors: FieldErrorView[]): Html {
  if (errors.length === 0) return html``
  return html`<div class="notice notice-error" role="alert">
    <p>The request was refused:</p>
    <ul>
      ${errors.map((e) => html`<li><code>${e.field}</code>: ${e.message}</li>`)}
    </ul>
  </div>`
}

/** A labelled checkbox or radio button (the label after the box, both in a `.check` row). */
export function choice(
  type: 'checkbox' | 'radio',
  o: { id: string; name: string; value: string; label: string; on: boolean },
): Html {
  const on = o.on ? html` checked` : ''
  return html`<div class="check">
    <input type="${type}" id="${o.id}" name="${o.name}" value="${o.value}" ${on} /><label for="${o.id}"
      >${o.label}</label
    >
  </div>`
}

/** `<option>`s of a select, the current one selected. */
export const options = (values: string[], current: string, label: (v: string) => string = (v) => v): Html[] =>
  values.map((v) => html`<option value="${v}" ${v === current ? html` selected` : ''}>${label(v)}</option>`)

/**
 * A table's head: its column headers (columns), then with `actions` one for each row's buttons, named for
 * screen readers only.
 */
export const thead = (labels: Array<string | Html>, actions = false): Html =>
  html`<thead>
    <tr>
      ${columns(labels)} ${actions ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ''}
    </tr>
  </thead>`

/** A table's rows, or when there are none one row across all its `span` columns saying `empty`. */
export const rowsOr = (rows: Html[], span: number, empty: string): Html | Html[] =>
  rows.length > 0
    ? rows
    : html`<tr>
        <td colspan="${span}" class="muted">${empty}</td>
      </tr>`

/** A table in its scrolling wrapper: caption, head (thead) and rows (with `empty`: rowsOr). */
export function table(
  caption: unknown,
  labels: Array<string | Html>,
  rows: Html[],
  o: { actions?: boolean; empty?: string } = {},
): Html {
  const span = labels.length + (o.actions ? 1 : 0)
  return html`<div class="table-wrap">
    <table>
      <caption>
        ${caption}
      </caption>
      ${thead(labels, o.actions)}
      <tbody>
        ${o.empty === undefined ? rows : rowsOr(rows, span, o.empty)}
      </tbody>
    </table>
  </div>`
}

/** A select with its label above it, in a `<div>` of its own (a field of a filter form). */
export const selectField = (id: string, name: string, label: string | Html, choices: Html | Html[]): Html =>
  html`<div>
    <label for="${id}">${label}</label
    ><select id="${id}" name="${name}">
      ${choices}
    </select>
  </div>`

/** A secret shown once (a webhook's, an inbound connector's), in an element `id` a person or a test finds it by. */
export const secretNotice = (secret: string, what: string, id: string): Html =>
  html`<div class="notice notice-secret" role="status">
    <p>${what}, shown only now: copy it.</p>
    <p><code id="${id}">${secret}</code></p>
  </div>`
