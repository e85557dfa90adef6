/**
 * The web console end to end, in headless Chromium against a running platform on the real stack
 * (docs/console.md): sign-in and sign-out; scoping (another partner's subscription is the 404 page);
 * a subscription created through the form; a delivery that fails (dead letter), is retried from the
 * page and turns green; a replay with its progress bar; a form post without its CSRF token refused
 * (403); the publisher's pages; the deal pages (a partner's own registrations and leads, a publisher's
 * decision beside the registration it conflicts with). Every page is screenshotted
 * (test-results/console/), checked with axe-core (WCAG 2 A/AA: labels, keyboard, contrast), watched for
 * CSP refusals, and must not scroll sideways at phone width.
 */
import { expect } from 'chai'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import {
  axeViolations,
  CHROMIUM_MISSING,
  chromiumPath,
  launchBrowser,
  screenshot,
  watchCsp,
} from '../helpers/browser.ts'

describe('web console (headless Chromium)', function () {
  this.timeout(240_000)
  const executable = chromiumPath()
  const { config, adminKey } = testPlatformConfig('console')
  Object.assign(config.worker, { pollMs: 300, heartbeatMs: 300, cursorFlushMs: 300, statusIntervalMs: 1000 })
  const logger = createLogger({ level: 'error', write: () => undefined })
  const run = uniqueName('c').slice(-8)
  let p: Platform
  let browser: Browser
  let rx: Receiver
  let rxContoso: Receiver
  const org = { acme: '', northwind: '', contoso: '' }
  const key = { acme: '', northwind: '', contoso: '' }
  let contosoSub = ''
  let northwindSub = ''
  const failOnce = new Set<string>()
  const startedAt = new Date(Date.now() - 1000)

  const call = async (method: string, path: string, body?: unknown, k = adminKey) => {
    const res = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: text ? (JSON.parse(text) as any) : null, text }
  }

  /** A context of its own per person (cookies apart); phone width by default. */
  const person = async (
    viewport = { width: 390, height: 844 },
  ): Promise<{ ctx: BrowserContext; page: Page; csp: string[] }> => {
    const ctx = await browser.newContext({ viewport })
    const page = await ctx.newPage()
    return { ctx, page, csp: watchCsp(page) }
  }

  /** Screenshot, axe, CSP and the phone-width check of the page as it is now. */
  const check = async (page: Page, csp: string[], name: string) => {
    await screenshot(page, name)
    const violations = await axeViolations(page)
    expect(violations, `${name}: ${JSON.stringify(violations, null, 1)}`).to.deep.equal([])
    expect(csp, `${name}: CSP refusals`).to.deep.equal([])
    const sideways = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number
    expect(sideways, `${name}: no horizontal scrolling`).to.be.at.most(0)
  }

  const signIn = async (page: Page, k: string) => {
    await page.goto(`${p.url}/console/signin`)
    await page.getByLabel('API key').fill(k)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${p.url}/console/`)
  }

  before(async function () {
    if (!executable) {
      console.log(`      skipped: ${CHROMIUM_MISSING}`)
      this.skip()
    }
    browser = await launchBrowser(executable!)
    p = await startPlatform(config, logger, { stopStackOnClose: false })
    await p.contracts
    rx = await startReceiver((r, res) => {
      // the first delivery of an event marked to fail is refused (a dead letter at once); later ones succeed
      const id = String(r.headers['webhook-id'] ?? '')
      const sku = /"sku":"([^"]+)"/.exec(r.body)?.[1] ?? ''
      if (failOnce.has(sku)) {
        failOnce.delete(sku)
        return res.writeHead(422).end(`refusing ${id} once`)
      }
      res.writeHead(204).end()
    })
    rxContoso = await startReceiver()
    for (const [name, kind] of [
      ['acme', 'publisher'],
      ['northwind', 'partner'],
      ['contoso', 'partner'],
    ] as const) {
      const o = await call('POST', '/v1/organizations', {
        kind,
        name: `${name[0]!.toUpperCase()}${name.slice(1)} ${run}`,
        slug: `${name}-${run}`,
      })
      expect(o.status, o.text).to.equal(201)
      org[name] = o.body.id
      const k = await call('POST', '/v1/api-keys', { scope: kind, organizationId: o.body.id, name: 'console' })
      key[name] = k.body.key
    }
    for (const partner of ['northwind', 'contoso'] as const) {
      const g = await call(
        'POST',
        '/v1/grants',
        { partnerId: org[partner], entitlements: [{ eventType: 'inventory.level.changed' }] },
        key.acme,
      )
      expect(g.status, g.text).to.equal(201)
      expect((await call('POST', `/v1/grants/${g.body.id}/accept`, {}, key[partner])).status).to.equal(200)
    }
    const s = await call(
      'POST',
      '/v1/subscriptions',
      { name: 'contoso-hooks', eventTypes: ['inventory.level.changed'], sink: { type: 'webhook', url: rxContoso.url } },
      key.contoso,
    )
    expect(s.status, s.text).to.equal(201)
    contosoSub = s.body.id
  })

  after(async () => {
    await browser?.close()
    await p?.close()
    await rx?.close()
    await rxContoso?.close()
  })

  it('signs in with an API key (a wrong one refused), shows a partner its publishers, signs out for good', async () => {
    const { ctx, page, csp } = await person()
    await page.goto(`${p.url}/console/subscriptions`)
    expect(page.url()).to.equal(`${p.url}/console/signin`) // no session: the sign-in page
    await check(page, csp, 'signin')
    await page.getByLabel('API key').fill('dk_000000000000.wrongwrongwrongwrongwrongwrongwrongwrongwro')
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await page.getByRole('alert').textContent()).to.match(/unknown, revoked or expired/)
    await signIn(page, key.northwind)
    const cookies = await ctx.cookies()
    const session = cookies.find((c) => c.name === 'distributary_console')!
    expect(session).to.include({ httpOnly: true, sameSite: 'Strict', path: '/console', secure: false })
    expect(session.expires).to.be.greaterThan(Date.now() / 1000)
    await check(page, csp, 'overview-partner')
    await page.getByRole('link', { name: 'Publishers', exact: true }).click()
    expect(await page.locator('main').textContent()).to.include('inventory.level.changed')
    await check(page, csp, 'grants-partner')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(`${p.url}/console/signin`)
    // the old cookie opens nothing any more: the session is gone from the store
    await ctx.addCookies([{ ...session }])
    await page.goto(`${p.url}/console/subscriptions`)
    expect(page.url()).to.equal(`${p.url}/console/signin`)
    await ctx.close()
  })

  it('creates a subscription through the form (field errors first, named as the API names them)', async () => {
    const { ctx, page, csp } = await person()
    await signIn(page, key.northwind)
    await page.goto(`${p.url}/console/subscriptions/new`)
    await check(page, csp, 'subscription-new')
    await page.getByLabel('Name').fill('Bad Name')
    await page.getByRole('button', { name: 'Create subscription' }).click()
    const errors = await page.getByRole('alert').textContent()
    expect(errors)
      .to.match(/name: must match pattern/)
      .and.to.match(/eventTypes: must NOT have fewer than 1 items/)
    await check(page, csp, 'subscription-new-errors')
    await page.getByLabel('Name').fill('stock-hooks')
    await page.getByLabel('inventory.level.changed').check()
    await page.getByRole('radio', { name: 'Webhook' }).check()
    await page.getByLabel('URL (webhook and REST)').fill(rx.url)
    await page.getByRole('button', { name: 'Create subscription' }).click()
    await page.waitForSelector('#webhook-secret')
    expect(await page.locator('#webhook-secret').textContent()).to.match(/^whsec_/)
    await check(page, csp, 'subscription-created')
    const list = await call('GET', '/v1/subscriptions', undefined, key.northwind)
    northwindSub = list.body.items.find((s: { name: string }) => s.name === 'stock-hooks').id
    await waitFor(
      async () =>
        (await call('GET', `/v1/connectors/${northwindSub}/status`, undefined, key.northwind)).body?.state ===
        'running',
      { timeoutMs: 30_000, what: 'the new subscription running' },
    )
    await ctx.close()
  })

  it("a partner opening another partner's subscription gets the 404 page", async () => {
    const { ctx, page, csp } = await person()
    await signIn(page, key.northwind)
    for (const path of [`/console/subscriptions/${contosoSub}`, `/console/subscriptions/${contosoSub}/deliveries`]) {
      const res = await page.goto(`${p.url}${path}`)
      expect(res?.status(), path).to.equal(404)
      expect(await page.locator('h1').textContent()).to.equal('Not found')
    }
    await check(page, csp, 'not-found')
    await ctx.close()
  })

  it('a delivery that fails is retried from the page and turns green', async () => {
    const sku = `SKU-${run}`
    failOnce.add(sku)
    const level = {
      manufacturerId: org.acme,
      sku,
      locationId: 'MAIN',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: 5,
      reserved: 0,
      available: 5,
      incoming: [],
      sequence: 1,
      occurredAt: new Date().toISOString(),
    }
    const sent = await call('POST', '/v1/events/inventory.level.changed', [level], key.acme)
    expect(sent.status, sent.text).to.equal(202)
    const eventId = sent.body.eventIds[0] as string
    const { ctx, page, csp } = await person({ width: 1280, height: 900 })
    await signIn(page, key.northwind)
    const row = page.locator(`tr[data-event-id="${eventId}"]`)
    await waitFor(
      async () => {
        await page.goto(`${p.url}/console/subscriptions/${northwindSub}/deliveries?status=dead`)
        return (await row.count()) === 1
      },
      { timeoutMs: 30_000, what: 'the dead letter on the page' },
    )
    expect(await row.getAttribute('data-status')).to.equal('dead')
    await row.locator('summary').click()
    expect(await row.locator('table.attempts').textContent()).to.include('422')
    await check(page, csp, 'dead-letters')
    await row.getByRole('button', { name: /Retry/ }).click()
    await page.waitForSelector(`tr[data-event-id="${eventId}"][data-status="delivered"]`, { timeout: 30_000 })
    expect(await row.locator('.badge-delivered').count()).to.equal(1)
    await check(page, csp, 'retried-delivered')
    await page.goto(`${p.url}/console/subscriptions/${northwindSub}/deliveries`)
    await check(page, csp, 'deliveries')
    await ctx.close()
  })

  it('sends a test event from the subscription page and shows it delivered, with its attempt', async () => {
    const { ctx, page, csp } = await person()
    await signIn(page, key.contoso)
    const before = rxContoso.received.length
    await page.goto(`${p.url}/console/subscriptions/${contosoSub}`)
    await page.getByLabel('Event type of the test event').selectOption('inventory.level.changed')
    await page.getByRole('button', { name: 'Send a test event' }).click()
    await page.waitForURL(new RegExp(`/console/subscriptions/${contosoSub}/tests/rtr_[0-9a-f]{24}$`))
    await page.waitForSelector('#test [data-test-status="delivered"]', { timeout: 30_000 })
    expect(await page.locator('#test ol.attempts').textContent()).to.include('204')
    const got = rxContoso.received.slice(before)
    expect(got).to.have.length(1)
    expect(JSON.parse(got[0]!.body)).to.deep.include({ type: 'inventory.level.changed', test: true })
    await check(page, csp, 'test-event')
    await ctx.close()
  })

  it('a replay from a time shows its progress until it completes', async () => {
    const { ctx, page, csp } = await person()
    await signIn(page, key.northwind)
    const before = rx.received.filter((r) => r.body.includes(`SKU-${run}`)).length
    await page.goto(`${p.url}/console/subscriptions/${northwindSub}`)
    expect(await page.locator('#status').textContent()).to.match(/Your view of .*'s stock is/)
    await check(page, csp, 'subscription')
    await page.getByLabel('Replay from (UTC)').fill(startedAt.toISOString().slice(0, 19))
    await page.getByRole('button', { name: 'Replay' }).click()
    await page.waitForSelector('#replay progress')
    await screenshot(page, 'replay-started')
    await page.waitForSelector('#replay progress[data-done="true"]', { timeout: 60_000 })
    expect(await page.locator('#replay progress').getAttribute('value')).to.equal('100')
    await waitFor(() => rx.received.filter((r) => r.body.includes(`SKU-${run}`)).length > before, {
      what: 'the replayed event at the partner',
    })
    await check(page, csp, 'replay-complete')
    await page.setViewportSize({ width: 1280, height: 900 })
    await check(page, csp, 'subscription-desktop') // the README's picture (docs/images/console.png)
    await ctx.close()
  })

  it('refuses a form post without its CSRF token (403), and accepts it with the token', async () => {
    const { ctx, page } = await person()
    await signIn(page, key.northwind)
    const url = `${p.url}/console/subscriptions/${northwindSub}/state`
    const without = await ctx.request.post(url, { form: { action: 'pause' }, maxRedirects: 0 })
    expect(without.status()).to.equal(403)
    const wrong = await ctx.request.post(url, { form: { action: 'pause', _csrf: 'not-the-token' }, maxRedirects: 0 })
    expect(wrong.status()).to.equal(403)
    expect((await call('GET', `/v1/connectors/${northwindSub}`, undefined, key.northwind)).body.desiredState).to.equal(
      'running',
    )
    await page.goto(`${p.url}/console/subscriptions/${northwindSub}`)
    const token = await page.locator('form[action$="/state"] input[name="_csrf"]').first().getAttribute('value')
    const ok = await ctx.request.post(url, { form: { action: 'pause', _csrf: token! }, maxRedirects: 0 })
    expect(ok.status()).to.equal(303)
    expect((await call('GET', `/v1/connectors/${northwindSub}`, undefined, key.northwind)).body.desiredState).to.equal(
      'paused',
    )
    await page.goto(`${p.url}/console/subscriptions/${northwindSub}`)
    await page.getByRole('button', { name: 'Resume' }).click()
    await page.waitForURL(`${p.url}/console/subscriptions/${northwindSub}`)
    expect((await call('GET', `/v1/connectors/${northwindSub}`, undefined, key.northwind)).body.desiredState).to.equal(
      'running',
    )
    await ctx.close()
  })

  it('deals: a partner sees its own registrations and leads, a publisher approves one beside a conflict', async () => {
    const register = async (partner: 'northwind' | 'contoso', reference: string) => {
      const body = {
        manufacturerId: org.acme,
        partnerReference: reference,
        endCustomer: { name: `Initech ${run}`, domain: `initech-${run}.example`, country: 'DE' },
        lines: [{ sku: 'DRL-2000', quantity: 10, unitPrice: '199.00' }],
        amount: '1990.00',
        currency: 'EUR',
        expectedCloseDate: '2027-02-28',
      }
      const d = await call('POST', '/v1/deals', body, key[partner])
      expect(d.status, d.text).to.equal(201)
      return d.body as { id: string; state: string }
    }
    const stateOf = async (id: string) => (await call('GET', `/v1/deals/${id}`)).body.state as string
    const first = await register('northwind', `NW-${run}`)
    const second = await register('contoso', `CT-${run}`)
    expect(second.state).to.equal('conflict_review')
    const company = { name: `Fabrikam ${run}`, domain: `fabrikam-${run}.example`, country: 'CH' }
    const lead = await call(
      'POST',
      '/v1/leads',
      { partnerId: org.northwind, company, productInterest: ['DRL-2000'] },
      key.acme,
    )
    expect(lead.status, lead.text).to.equal(201)

    const { ctx, page, csp } = await person()
    await signIn(page, key.northwind)
    await page.getByRole('link', { name: 'Deals', exact: true }).click()
    await page.waitForURL(`${p.url}/console/deals`)
    expect(await page.locator(`tr[data-deal-id="${first.id}"]`).count()).to.equal(1)
    expect(await page.content(), "another partner's registration").to.not.include(second.id)
    await check(page, csp, 'deals-partner')
    await page.getByRole('button', { name: `Accept the lead ${company.name}` }).click()
    await page.waitForURL(`${p.url}/console/deals#leads`)
    expect(await page.locator(`tr[data-lead-id="${lead.body.id}"]`).getAttribute('data-state')).to.equal('accepted')
    await page.goto(`${p.url}/console/deals/${first.id}`)
    expect(await page.locator('#history').textContent()).to.include('submit')
    await check(page, csp, 'deal-partner')
    const other = await page.goto(`${p.url}/console/deals/${second.id}`)
    expect(other?.status()).to.equal(404)
    expect(await page.locator('h1').textContent()).to.equal('Not found')
    const forged = await ctx.request.post(`${p.url}/console/deals/${first.id}/actions`, {
      form: { action: 'cancel' },
      maxRedirects: 0,
    })
    expect(forged.status()).to.equal(403)
    expect(await stateOf(first.id)).to.equal('submitted')
    await ctx.close()

    const pub = await person()
    await signIn(pub.page, key.acme)
    await pub.page.goto(`${p.url}/console/deals`)
    const card = pub.page.locator(`article[data-decision="${second.id}"]`)
    expect(
      await card.locator(`table.compare th[data-deal-id="${first.id}"]`).count(),
      'the conflict beside it',
    ).to.equal(1)
    expect(await card.locator('table.compare').textContent())
      .to.include(`Northwind ${run}`)
      .and.include(`Contoso ${run}`)
    await check(pub.page, pub.csp, 'deals-publisher')
    await card.getByLabel(/^Reason/).fill('first to bring the customer')
    await card.getByRole('button', { name: /^Approve/ }).click()
    await pub.page.waitForURL(`${p.url}/console/deals`)
    expect(await stateOf(second.id)).to.equal('approved')
    expect(await pub.page.locator(`article[data-decision="${second.id}"]`).count()).to.equal(0)
    expect(await pub.page.locator(`tr[data-deal-id="${second.id}"]`).getAttribute('data-state')).to.equal('approved')
    await pub.page.goto(`${p.url}/console/deals/${second.id}`)
    expect(await pub.page.locator('#history').textContent())
      .to.include('approve')
      .and.include('first to bring the customer')
    await check(pub.page, pub.csp, 'deal-publisher')
    await pub.page.setViewportSize({ width: 1280, height: 900 })
    await pub.page.goto(`${p.url}/console/deals`)
    await check(pub.page, pub.csp, 'deals-publisher-desktop')
    await pub.ctx.close()
  })

  it("shows a publisher its partners, connectors (no pause for partners'), sources, schemas, catalog", async () => {
    const { ctx, page, csp } = await person({ width: 1280, height: 900 })
    await signIn(page, key.acme)
    await check(page, csp, 'overview-publisher')
    await page.goto(`${p.url}/console/grants`)
    expect(await page.locator('main').textContent()).to.include(`Northwind ${run}`)
    await check(page, csp, 'grants-publisher')
    await page.goto(`${p.url}/console/connectors?sort=lag&dir=desc`)
    expect(await page.locator('#connectors').textContent())
      .to.include('stock-hooks')
      .and.include('contoso-hooks')
    expect(
      await page.locator('#connectors button').count(),
      "a publisher may not pause a partner's connector",
    ).to.equal(0)
    await check(page, csp, 'connectors')
    await page.goto(`${p.url}/console/sources`)
    await check(page, csp, 'sources')
    await page.goto(`${p.url}/console/schemas`)
    expect(await page.locator('main').textContent()).to.include('inventory.levels-value')
    await check(page, csp, 'schemas')
    await page.goto(`${p.url}/console/schemas/subject?subject=inventory.levels-value`)
    await check(page, csp, 'schema-subject')
    await page.goto(`${p.url}/console/catalog`)
    expect(await page.locator('main').textContent()).to.include('inventory.level.changed')
    await check(page, csp, 'catalog')
    // the partner's subscription page as its publisher sees it: no sink URL, no actions
    await page.goto(`${p.url}/console/subscriptions/${northwindSub}`)
    const text = (await page.locator('main').textContent())!
    expect(text).to.not.include(rx.url)
    expect(await page.getByRole('button', { name: 'Pause' }).count()).to.equal(0)
    await check(page, csp, 'subscription-as-publisher')
    // inbound connectors: one created through the form, its secret shown once
    await page.goto(`${p.url}/console/inbound`)
    await page.fill('#name', 'salesforce')
    await page.getByRole('button', { name: 'Create inbound connector' }).click()
    expect(await page.locator('#inbound-secret').textContent()).to.match(/^whsec_/)
    expect(await page.locator('main table').textContent()).to.include('salesforce')
    await check(page, csp, 'inbound')
    await ctx.close()
    const phone = await person()
    await signIn(phone.page, key.acme)
    await phone.page.goto(`${p.url}/console/inbound`)
    await check(phone.page, phone.csp, 'inbound-phone')
    await phone.ctx.close()
  })
})
