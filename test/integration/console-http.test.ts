/**
 * The console's security at the HTTP level, without a browser (runs where chromium is missing too):
 * the Content-Security-Policy and the assets served by the platform; sign-in through the API keys'
 * verification and its limit on failed attempts; the session cookie's attributes; only a hash of the
 * session id stored; sign-out, a revoked key and an expiry each end a session; the CSRF token; values
 * from the store escaped; the deal pages' scoping and steps.
 */
import crypto from 'node:crypto'
import { expect } from 'chai'
import { CONTENT_SECURITY_POLICY } from '../../console/index.ts'
import { startManagement, type ManagementHarness } from '../helpers/management.ts'

describe('web console over HTTP', function () {
  this.timeout(60_000)
  let h: ManagementHarness
  let partnerKey: { id: string; key: string }
  let partnerId = ''

  const get = (path: string, cookie?: string) =>
    fetch(h.url + path, { redirect: 'manual', headers: cookie ? { cookie } : {} })
  const post = (path: string, form: Record<string, string>, cookie?: string, headers: Record<string, string> = {}) =>
    fetch(h.url + path, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}), ...headers },
      body: new URLSearchParams(form).toString(),
    })
  const cookieOf = (res: Response, name: string) => res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`))
  const pair = (setCookie: string) => setCookie.split(';')[0]!

  /** Signs in with `key`: the session cookie (name=value). */
  const signIn = async (key: string): Promise<string> => {
    const form = await get('/console/signin')
    const token = pair(cookieOf(form, 'distributary_console_signin')!)
    const res = await post('/console/signin', { _csrf: token.split('=')[1]!, apiKey: key }, token)
    expect(res.status, await res.text()).to.equal(303)
    return pair(cookieOf(res, 'distributary_console')!)
  }

  /** An organization of `kind` and a key of it. */
  const mk = async (kind: string, slug: string) => {
    const org = (await h.call('POST', '/v1/organizations', { body: { kind, name: slug, slug } })).body.id as string
    const key = await h.call('POST', '/v1/api-keys', { body: { scope: kind, organizationId: org, name: 'k' } })
    return { org, key: key.body.key as string }
  }

  before(async () => {
    h = await startManagement({ console: true, overrides: { management: { keyAttempts: { perSecond: 1, burst: 3 } } } })
    const org = await h.call('POST', '/v1/organizations', {
      body: { kind: 'partner', name: '<script>alert("x")</script> & Co', slug: 'evil-co' },
    })
    partnerId = org.body.id
    partnerKey = (
      await h.call('POST', '/v1/api-keys', { body: { scope: 'partner', organizationId: partnerId, name: 'console' } })
    ).body
  })
  after(() => h?.close())

  it('serves every page with a strict CSP (no inline script or style, no eval), and its own assets', async () => {
    expect(CONTENT_SECURITY_POLICY).to.not.match(/unsafe-inline|unsafe-eval/)
    const res = await get('/console/signin')
    expect(res.headers.get('content-security-policy')).to.equal(CONTENT_SECURITY_POLICY)
    expect(res.headers.get('x-frame-options')).to.equal('DENY')
    const page = await res.text()
    expect(page).to.include('<script src="/console/assets/htmx.min.js" defer></script>')
    expect(page.match(/<script(?![^>]*\ssrc=)[^>]*>/g), 'no inline script').to.equal(null)
    expect(page).to.not.match(/\sstyle=|<style/)
    expect(page).to.include('&quot;includeIndicatorStyles&quot;:false')
    const htmx = await get('/console/assets/htmx.min.js')
    expect(htmx.status).to.equal(200)
    expect(htmx.headers.get('content-type')).to.match(/javascript/)
    expect(await htmx.text()).to.include('htmx')
    const css = await get('/console/assets/console.css')
    expect(css.headers.get('content-type')).to.match(/text\/css/)
    expect((await get('/console/assets/nope.css')).status).to.equal(404)
  })

  it('signs in through the API key check: a form without its token refused, failed attempts limited', async () => {
    expect((await post('/console/signin', { apiKey: partnerKey.key })).status).to.equal(403)
    const form = await get('/console/signin')
    const token = pair(cookieOf(form, 'distributary_console_signin')!)
    const statuses: number[] = []
    for (let i = 0; i < 4; i++)
      statuses.push(
        (
          await post(
            '/console/signin',
            { _csrf: token.split('=')[1]!, apiKey: `dk_0123456789ab.${'x'.repeat(43)}` },
            token,
          )
        ).status,
      )
    expect(statuses).to.deep.equal([401, 401, 401, 429])
    await new Promise((r) => setTimeout(r, 1200)) // a valid key needs one attempt left (given back when it verifies)
  })

  it('stores only a hash of the session id; an HttpOnly, SameSite=Strict, expiring cookie', async () => {
    const form = await get('/console/signin')
    const token = pair(cookieOf(form, 'distributary_console_signin')!)
    const res = await post('/console/signin', { _csrf: token.split('=')[1]!, apiKey: partnerKey.key }, token)
    expect(res.status).to.equal(303)
    const set = cookieOf(res, 'distributary_console')!
    expect(set)
      .to.match(/; Path=\/console; HttpOnly; SameSite=Strict; Max-Age=\d+/)
      .and.not.match(/Secure/)
    const id = pair(set).split('=')[1]!
    const stored = await h.db
      .collection('console_sessions')
      .findOne({ _id: crypto.createHash('sha256').update(id).digest('hex') as never })
    expect(stored).to.not.equal(null)
    expect(JSON.stringify(stored)).to.not.include(id)
    const page = await (await get('/console/', pair(set))).text()
    expect(page).to.include('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co')
    expect(page).to.not.include('<script>alert')
  })

  it("refuses a change without the session's CSRF token (a form field, or the htmx header)", async () => {
    const cookie = await signIn(partnerKey.key)
    const page = await (await get('/console/', cookie)).text()
    const token = /name="_csrf" value="([^"]+)"/.exec(page)![1]!
    expect(page).to.include(`hx-headers="{&quot;X-CSRF-Token&quot;:&quot;${token}&quot;}"`)
    expect((await post('/console/grants/grt_000000000000000000000000/end', {}, cookie)).status).to.equal(403)
    expect(
      (await post('/console/grants/grt_000000000000000000000000/end', { _csrf: 'forged' }, cookie)).status,
    ).to.equal(403)
    // with the token the request gets through to the control plane: an unknown grant is the 404 page
    expect((await post('/console/grants/grt_000000000000000000000000/end', { _csrf: token }, cookie)).status).to.equal(
      404,
    )
    expect(
      (
        await post('/console/grants/grt_000000000000000000000000/end', {}, cookie, {
          'x-csrf-token': token,
          'hx-request': 'true',
        })
      ).status,
    ).to.equal(404)
  })

  it('accepts a grant, lists dead letters newest first, retries those matching a filter once confirmed', async () => {
    const acme = await mk('publisher', 'acme-grants')
    const nw = await mk('partner', 'northwind-grants')
    const region = { region: { in: ['EU'] } }
    const offer = { partnerId: nw.org, entitlements: [{ eventType: 'inventory.level.changed', filter: region }] }
    const g = await h.call('POST', '/v1/grants', { key: acme.key, body: offer })
    const cookie = await signIn(nw.key)
    const grants = await (await get('/console/grants', cookie)).text()
    const token = /name="_csrf" value="([^"]+)"/.exec(grants)![1]!
    expect(grants).to.include(`action="/console/grants/${g.body.id}/accept"`)
    expect((await post(`/console/grants/${g.body.id}/accept`, { _csrf: token, version: '1' }, cookie)).status).to.equal(
      303,
    )
    expect((await h.call('GET', `/v1/grants/${g.body.id}`, { key: nw.key })).body.status).to.equal('active')
    // the publisher adds an event type through the console's form: the row filter it cannot show is kept
    const acmeCookie = await signIn(acme.key)
    const acmePage = await (await get('/console/grants', acmeCookie)).text()
    const acmeToken = /name="_csrf" value="([^"]+)"/.exec(acmePage)![1]!
    const change = new URLSearchParams({ _csrf: acmeToken, partnerId: nw.org })
    for (const t of ['inventory.level.changed', 'deal.registered']) change.append('eventTypes', t)
    const changed = await fetch(`${h.url}/console/grants`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: acmeCookie },
      body: change.toString(),
    })
    expect(changed.status).to.equal(303)
    const after = (await h.call('GET', `/v1/grants/${g.body.id}`, { key: nw.key })).body
    expect(after.entitlements).to.deep.equal([
      { eventType: 'inventory.level.changed', filter: region },
      { eventType: 'deal.registered' },
    ])
    expect(after.pendingEventTypes).to.deep.equal(['deal.registered'])
    const sub = await h.call('POST', '/v1/subscriptions', {
      key: nw.key,
      body: {
        name: 'hooks',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: 'https://nw.example/h' },
      },
    })
    const base = { subscriptionId: sub.body.id as string, partnerId: nw.org, publisherId: acme.org, key: 'k' }
    const failed = { at: new Date(), durationMs: 5, statusCode: 500, error: 'HTTP 500', responseExcerpt: 'no' }
    for (let i = 0; i < 3; i++) {
      await h.cp.deliveries.recordAttempt({
        ...base,
        eventId: `ev-${i}`,
        eventType: i === 2 ? 'deal.registered' : 'inventory.level.changed',
        status: 'dead',
        deadReason: 'retries exhausted',
        attempt: failed,
      })
    }
    const page = await (await get(`/console/subscriptions/${sub.body.id}/deliveries?status=dead`, cookie)).text()
    const order = [...page.matchAll(/data-event-id="([^"]+)"/g)].map((m) => m[1])
    expect(order).to.deep.equal(['ev-2', 'ev-1', 'ev-0']) // newest first, through the failures index
    // its index was started with it: every failure is there, so no slower search of the whole log is offered
    const flat = page.replace(/\s+/g, ' ')
    expect(flat).to.include('Every failure since the subscription was created, newest first.')
    expect(flat).not.to.include('Search the whole delivery log')
    const head = { _id: `${sub.body.id}|dead` }
    const heads = h.db.collection<{ _id: string; since?: Date }>('delivery_failures')
    const since = (await heads.findOne(head))!.since!
    await heads.updateOne(head, { $set: { since: new Date(Date.now() + 1000) } }) // as if kept only since later
    const later = (
      await (await get(`/console/subscriptions/${sub.body.id}/deliveries?status=dead`, cookie)).text()
    ).replace(/\s+/g, ' ')
    expect(later).to.include('Search the whole delivery log</a> (slower) for older ones.')
    await heads.updateOne(head, { $set: { since } })
    const path = `/console/subscriptions/${sub.body.id}/deliveries/retry-matching`
    const filter = { _csrf: token, eventType: 'inventory.level.changed' }
    const confirm = await post(path, filter, cookie)
    expect(confirm.status).to.equal(200)
    expect((await confirm.text()).replace(/\s+/g, ' ')).to.include('2 dead letters match this filter')
    expect(await h.db.collection('retry_requests').countDocuments({ subscriptionId: sub.body.id })).to.equal(0)
    expect((await post(path, { ...filter, confirm: 'yes' }, cookie)).status).to.equal(303)
    const requests = await h.db.collection('retry_requests').find({ subscriptionId: sub.body.id }).toArray()
    expect(requests.map((r) => r.eventId).sort()).to.deep.equal(['ev-0', 'ev-1'])
  })

  it("deal pages: a partner's own registrations only, another's deal the 404 page, steps need the token", async () => {
    const acme = await mk('publisher', 'acme-deals')
    const partners = [await mk('partner', 'northwind-deals'), await mk('partner', 'contoso-deals')]
    for (const partner of partners) {
      const offer = { partnerId: partner.org, entitlements: [{ eventType: 'deal.registered' }] }
      const g = await h.call('POST', '/v1/grants', { key: acme.key, body: offer })
      expect((await h.call('POST', `/v1/grants/${g.body.id}/accept`, { key: partner.key })).status).to.equal(200)
    }
    const register = async (partner: { key: string }, reference: string) => {
      const body = {
        manufacturerId: acme.org,
        partnerReference: reference,
        endCustomer: { name: 'Initech <b>GmbH</b>', domain: 'initech-http.example', country: 'DE' },
        lines: [{ sku: 'DRL-2000', quantity: 10, unitPrice: '199.00' }],
        amount: '1990.00',
        currency: 'EUR',
        expectedCloseDate: '2027-02-28',
      }
      const d = await h.call('POST', '/v1/deals', { key: partner.key, body })
      expect(d.status, d.text).to.equal(201)
      return d.body as { id: string; state: string }
    }
    const [nw, contoso] = partners as [{ org: string; key: string }, { org: string; key: string }]
    const first = await register(nw, 'NW-1')
    const second = await register(contoso, 'CT-1')
    expect(second.state).to.equal('conflict_review')
    const nwCookie = await signIn(nw.key)
    const mine = await (await get('/console/deals', nwCookie)).text()
    expect(mine).to.include(`data-deal-id="${first.id}"`).and.not.include(second.id)
    expect(mine).to.include('Initech &lt;b&gt;GmbH&lt;/b&gt;').and.not.include('<b>GmbH')
    expect((await get(`/console/deals/${second.id}`, nwCookie)).status).to.equal(404)
    expect((await get('/console/deals?state=nonsense', nwCookie)).status).to.equal(422)
    // the partner may cancel its own, not decide: no approve button, and the service refuses a forged one (409)
    const own = await (await get(`/console/deals/${first.id}`, nwCookie)).text()
    expect(own).to.include('value="cancel"').and.not.include('value="approve"')
    const token = /name="_csrf" value="([^"]+)"/.exec(own)![1]!
    expect(
      (await post(`/console/deals/${first.id}/actions`, { _csrf: token, action: 'approve' }, nwCookie)).status,
    ).to.equal(409)
    // the publisher: the conflicting registrations side by side; a decision without the token refused
    const acmeCookie = await signIn(acme.key)
    const queue = await (await get('/console/deals', acmeCookie)).text()
    const card = queue.slice(queue.indexOf(`data-decision="${second.id}"`))
    expect(card.slice(0, card.indexOf('</article>'))).to.include(`data-deal-id="${first.id}"`)
    const path = `/console/deals/${second.id}/actions`
    expect((await post(path, { action: 'approve' }, acmeCookie)).status).to.equal(403)
    expect((await h.call('GET', `/v1/deals/${second.id}`, { key: acme.key })).body.state).to.equal('conflict_review')
    const acmeToken = /name="_csrf" value="([^"]+)"/.exec(queue)![1]!
    const bad = await post(path, { _csrf: acmeToken, action: 'approve', reason: 'x'.repeat(1001) }, acmeCookie)
    expect(bad.status).to.equal(422)
    expect(await bad.text()).to.include('reason')
    const ok = await post(path, { _csrf: acmeToken, action: 'approve', from: 'list' }, acmeCookie)
    expect(ok.status).to.equal(303)
    expect(ok.headers.get('location')).to.equal('/console/deals')
    expect((await h.call('GET', `/v1/deals/${second.id}`, { key: acme.key })).body.state).to.equal('approved')
    // a lead: the partner declines it from the page, with a reason
    const lead = await h.call('POST', '/v1/leads', {
      key: acme.key,
      body: { partnerId: nw.org, company: { name: 'Fabrikam', country: 'CH' }, productInterest: ['DRL-2000'] },
    })
    expect(lead.status, lead.text).to.equal(201)
    const leadPath = `/console/leads/${lead.body.id}/actions`
    expect((await get('/console/deals', nwCookie)).status).to.equal(200)
    expect((await post(leadPath, { action: 'decline' }, nwCookie)).status).to.equal(403)
    expect((await post(leadPath, { _csrf: acmeToken, action: 'decline' }, acmeCookie)).status).to.equal(409)
    expect(
      (await post(leadPath, { _csrf: token, action: 'decline', reason: 'no capacity' }, nwCookie)).status,
    ).to.equal(303)
    const declined = (await h.call('GET', `/v1/leads/${lead.body.id}`, { key: acme.key })).body
    expect(declined).to.include({ state: 'declined', reason: 'no capacity' })
    // an admin key sees every registration, as the API shows it one
    const all = await (await get('/console/deals', await signIn(h.adminKey))).text()
    expect(all).to.include(`data-deal-id="${first.id}"`).and.include(`data-deal-id="${second.id}"`)
  })

  it("inbound connectors: a publisher's own, its secret shown once, rotated, deleted once confirmed", async () => {
    const acme = await mk('publisher', 'acme-inbound')
    const other = await mk('publisher', 'globex-inbound')
    const cookie = await signIn(acme.key)
    const empty = await (await get('/console/inbound', cookie)).text()
    expect(empty).to.include('No inbound connector yet.')
    expect(empty).to.include('href="/console/inbound"')
    const token = /name="_csrf" value="([^"]+)"/.exec(empty)![1]!
    // checked as the API checks it: the field named, what was typed kept
    const bad = await post('/console/inbound', { _csrf: token, name: 'crm\u202eevil', mapping: '{ "a": ' }, cookie)
    expect(bad.status).to.equal(422)
    const badPage = await bad.text()
    expect(badPage).to.include('must be one line of text, not blank, with no control or bidirectional override')
    expect(badPage).to.include('{ &quot;a&quot;: </textarea>')
    const badMapping = await post('/console/inbound', { _csrf: token, name: 'crm', mapping: '{ "a": ' }, cookie)
    expect(badMapping.status).to.equal(422)
    expect(await badMapping.text()).to.match(/id="mapping-error|mapping/)
    const created = await post(
      '/console/inbound',
      { _csrf: token, name: 'salesforce', toleranceSeconds: '120' },
      cookie,
    )
    expect(created.status).to.equal(200)
    const createdPage = await created.text()
    const secret = /id="inbound-secret">(whsec_[^<]+)</.exec(createdPage)![1]!
    const [listed] = (await h.call('GET', '/v1/inbound-connectors', { key: acme.key })).body.items
    expect(listed).to.include({ name: 'salesforce', toleranceSeconds: 120, url: `/v1/inbound/${listed.id}` })
    expect(createdPage).to.include(`<code>/v1/inbound/${listed.id}</code>`)
    // the secret shown is the one the endpoint verifies: a call signed with it gets past the signature check
    const call = async (key: string) => {
      const raw = JSON.stringify({ dealId: 'deal_000000000000000000000000', action: 'approve' })
      const id = `msg_${crypto.randomUUID()}`
      const ts = Math.floor(Date.now() / 1000)
      const mac = crypto.createHmac('sha256', Buffer.from(key.slice('whsec_'.length), 'base64'))
      const sig = mac.update(`${id}.${ts}.${raw}`).digest('base64')
      const headers = { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` }
      return (await h.call('POST', `/v1/inbound/${listed.id}`, { key: null, rawBody: raw, headers })).status
    }
    const wrong = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
    expect(await call(wrong)).to.equal(401)
    const verified = await call(secret)
    expect(verified, 'past the signature: the deal is unknown').to.equal(404)
    // another publisher neither sees it nor changes it
    const otherCookie = await signIn(other.key)
    const otherPage = await (await get('/console/inbound', otherCookie)).text()
    expect(otherPage).to.not.include(listed.id)
    const otherToken = /name="_csrf" value="([^"]+)"/.exec(otherPage)![1]!
    expect(
      (await post(`/console/inbound/${listed.id}/rotate-secret`, { _csrf: otherToken }, otherCookie)).status,
    ).to.equal(404)
    // a rotation shows the new secret once; the previous one is still accepted during the overlap
    const rotated = await (await post(`/console/inbound/${listed.id}/rotate-secret`, { _csrf: token }, cookie)).text()
    const next = /id="inbound-secret">(whsec_[^<]+)</.exec(rotated)![1]!
    expect(next).to.not.equal(secret)
    expect(rotated).to.include('previous one until')
    expect(await call(next)).to.equal(verified)
    expect(await call(secret)).to.equal(verified)
    // a partner has no inbound connectors
    expect((await get('/console/inbound', await signIn(partnerKey.key))).status).to.equal(403)
    // deleted only once confirmed
    expect((await post(`/console/inbound/${listed.id}/delete`, { _csrf: token }, cookie)).status).to.equal(422)
    expect((await h.call('GET', `/v1/inbound-connectors/${listed.id}`, { key: acme.key })).status).to.equal(200)
    const del = await post(`/console/inbound/${listed.id}/delete`, { _csrf: token, confirm: 'yes' }, cookie)
    expect(del.status).to.equal(303)
    expect((await h.call('GET', `/v1/inbound-connectors/${listed.id}`, { key: acme.key })).status).to.equal(404)
  })

  it('ends a session on sign-out, when its key is revoked, and when it expires (then sweeps it)', async () => {
    const a = await signIn(partnerKey.key)
    const page = await (await get('/console/', a)).text()
    const token = /name="_csrf" value="([^"]+)"/.exec(page)![1]!
    expect((await post('/console/signout', { _csrf: token }, a)).status).to.equal(303)
    expect((await get('/console/', a)).headers.get('location')).to.equal('/console/signin')

    const b = await signIn(partnerKey.key)
    const expired = await signIn(partnerKey.key)
    await h.db
      .collection('console_sessions')
      .updateOne(
        { _id: crypto.createHash('sha256').update(expired.split('=')[1]!).digest('hex') as never },
        { $set: { expiresAt: new Date(Date.now() - 1000) } },
      )
    expect((await get('/console/', expired)).headers.get('location')).to.equal('/console/signin')
    expect((await get('/console/', b)).status).to.equal(200)
    expect((await h.call('DELETE', `/v1/api-keys/${partnerKey.id}`)).status).to.equal(200)
    expect((await get('/console/', b)).headers.get('location')).to.equal('/console/signin')
    // an htmx request of a page left open: told to go to the sign-in page
    const hx = await fetch(`${h.url}/console/subscriptions/rows`, { headers: { cookie: b, 'hx-request': 'true' } })
    expect(hx.status).to.equal(401)
    expect(hx.headers.get('hx-redirect')).to.equal('/console/signin')
    const other = (
      await h.call('POST', '/v1/api-keys', { body: { scope: 'partner', organizationId: partnerId, name: 'again' } })
    ).body.key as string
    await signIn(other) // a sign-in sweeps the expired sessions
    expect(await h.db.collection('console_sessions').countDocuments({ expiresAt: { $lte: new Date() } })).to.equal(0)
  })
})
