/**
 * The page frame: head (the stylesheet, htmx, its configuration in a meta element: no inline script,
 * no inline styles, so the strict Content-Security-Policy holds), the navigation of the caller's
 * scope, the sign-out form, and the CSRF token htmx sends with every request (`hx-headers`).
 */
import type { Principal } from '../control-plane/types.ts'
import { html, raw, type Html } from './html.ts'

/** htmx without eval, inline scripts or its injected indicator <style> (docs: htmx.org/reference/#config). */
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  historyCacheSize: 0,
  refreshOnHistoryMiss: true,
  selfRequestsOnly: true,
})

export interface Frame {
  title: string
  principal?: Principal | undefined
  csrf?: string | undefined
  /** The navigation entry to mark as current. */
  current?: string
  /** The organization's name (shown beside the scope). */
  organization?: string | undefined
}

/** The pages of operators (publishers and admins), in the navigation after their first entries. */
const OPERATOR_PAGES: Array<[href: string, label: string]> = [
  ['/console/connectors', 'Connectors'],
  ['/console/sources', 'Sources'],
  ['/console/schemas', 'Schemas'],
  ['/console/catalog', 'Event catalog'],
  ['/console/deals', 'Deals'],
  ['/console/inbound', 'Inbound'],
]

function navFor(p: Principal): Array<[href: string, label: string]> {
  if (p.scope === 'partner')
    return [
      ['/console/', 'Overview'],
      ['/console/grants', 'Publishers'],
      ['/console/subscriptions', 'Subscriptions'],
      ['/console/deals', 'Deals'],
      ['/console/catalog', 'Event catalog'],
    ]
  const grants: [string, string] = ['/console/grants', p.scope === 'publisher' ? 'Partners' : 'Grants']
  // an admin sees the partners' subscriptions too; otherwise publishers and admins share the operators' pages
  return [
    ['/console/', 'Overview'],
    grants,
    ...(p.scope === 'publisher' ? [] : ([['/console/subscriptions', 'Subscriptions']] as Array<[string, string]>)),
    ...OPERATOR_PAGES,
  ]
}

export function layout(f: Frame, body: Html): string {
  const p = f.principal
  const headers = f.csrf ? JSON.stringify({ 'X-CSRF-Token': f.csrf }) : undefined
  const current = (href: string) => (f.current === href ? raw(' aria-current="page"') : '')
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${HTMX_CONFIG}">
<title>${f.title} · Distributary console</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/htmx.min.js" defer></script>
</head>
<body${headers ? html` hx-headers="${headers}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/console/">Distributary</a>
${
  p
    ? html`<nav aria-label="Main">
          <ul>
            ${navFor(p).map(([href, label]) => html`<li><a href="${href}" ${current(href)}>${label}</a></li>`)}
          </ul>
        </nav>
        <div class="who">
          <span>${f.organization ?? p.organizationId ?? 'platform'} · ${p.scope}</span>
          <form method="post" action="/console/signout">
            <input type="hidden" name="_csrf" value="${f.csrf}" /><button type="submit" class="link">Sign out</button>
          </form>
        </div>`
    : ''
}
</header>
<main id="main">
<h1>${f.title}</h1>
${body}
</main>
</body>
</html>
`.text
}
