/**
 * Deal registration on the real store (FerretDB here, MongoDB in production), through the management
 * API: the state machine (every state × action), conflict detection (subdomains, name and country,
 * products, expired approvals), what each side sees, concurrent submissions and approvals of one
 * opportunity (at most one approved), the expiry job with two instances at once, and the CRM's
 * inbound endpoint (bad signature, replay, duplicate decision, unknown deal).
 */
import { createHmac, randomUUID } from 'node:crypto'
import { expect } from 'chai'
import { startManagement, type ManagementHarness } from '../helpers/management.ts'
import { DealExpiry, type DealState } from '../../control-plane/deals/index.ts'
import { quietLogger } from '../helpers/registry.ts'

const platform = { actor: 'platform' as const, organizationId: null, via: 'platform' as const, ref: 'test' }

describe('deal registration (real store)', function () {
  this.timeout(180_000)
  let h: ManagementHarness
  const orgs = { P: '', Q: '', A: '', B: '' }
  const keys = { P: '', Q: '', A: '', B: '' }
  let n = 0

  before(async () => {
    h = await startManagement()
    const mk = async (kind: string, slug: string) => {
      const r = await h.call('POST', '/v1/organizations', {
        body: { kind, name: slug, slug: `${slug}-${randomUUID().slice(0, 6)}` },
      })
      expect(r.status, r.text).to.equal(201)
      return r.body.id as string
    }
    for (const [k, kind] of [
      ['P', 'publisher'],
      ['Q', 'publisher'],
      ['A', 'partner'],
      ['B', 'partner'],
    ] as const) {
      orgs[k] = await mk(kind, `deals-${k.toLowerCase()}`)
      const key = await h.call('POST', '/v1/api-keys', { body: { scope: kind, organizationId: orgs[k], name: k } })
      keys[k] = key.body.key
    }
    for (const partner of ['A', 'B'] as const) {
      const g = await h.call('POST', '/v1/grants', {
        key: keys.P,
        body: { partnerId: orgs[partner], entitlements: [{ eventType: 'deal.approved' }] },
      })
      expect(g.status, g.text).to.equal(201)
      expect((await h.call('POST', `/v1/grants/${g.body.id}/accept`, { key: keys[partner] })).status).to.equal(200)
    }
  })
  after(async () => {
    await h.cp.registry.close()
    await h.close()
  })

  const body = (o: { domain?: string | null; name?: string; country?: string; skus?: string[] } = {}) => ({
    manufacturerId: orgs.P,
    partnerReference: `ref-${++n}`,
    endCustomer: {
      name: o.name ?? `Customer ${n}`,
      domain: o.domain === undefined ? `c${n}-${randomUUID().slice(0, 8)}.example` : o.domain,
      country: o.country ?? 'DE',
    },
    lines: (o.skus ?? ['SKU-1']).map((sku) => ({ sku, quantity: 2, unitPrice: '10.00' })),
    amount: '20.00',
    currency: 'EUR',
    expectedCloseDate: '2027-03-31',
  })
  const register = async (partner: 'A' | 'B' = 'A', o: Parameters<typeof body>[0] = {}) => {
    const r = await h.call('POST', '/v1/deals', { key: keys[partner], body: body(o) })
    expect(r.status, r.text).to.equal(201)
    return r.body as { id: string; state: DealState; conflict: boolean; conflictsWith?: string[] }
  }
  const act = (who: 'A' | 'B' | 'P' | 'Q', id: string, action: string, extra: Record<string, unknown> = {}) =>
    h.call('POST', `/v1/deals/${id}/actions`, { key: keys[who], body: { action, ...extra } })
  const must = async (who: 'A' | 'B' | 'P' | 'Q', id: string, action: string) => {
    const r = await act(who, id, action)
    expect(r.status, `${action}: ${r.text}`).to.equal(200)
    return r.body
  }

  describe('registration and visibility', () => {
    it('assigns the id, validates against the contract naming the field, and needs an accepted grant', async () => {
      const d = await register()
      expect(d.id).to.match(/^[0-9a-f-]{36}$/)
      expect(d.state).to.equal('submitted')
      const bad = await h.call('POST', '/v1/deals', { key: keys.A, body: { ...body(), amount: '12.345.6' } })
      expect(bad.status).to.be.oneOf([400, 422])
      expect(JSON.stringify(bad.body.errors)).to.include('amount')
      const badDomain = await h.call('POST', '/v1/deals', {
        key: keys.A,
        body: { ...body(), endCustomer: { name: 'X', domain: 'not a domain', country: 'DE' } },
      })
      // the document's pattern now says what names a host: invalid (it was a 422 the document did not foretell)
      expect(badDomain.status).to.equal(400)
      expect(badDomain.body.errors[0].field).to.equal('endCustomer.domain')
      const noGrant = await h.call('POST', '/v1/deals', { key: keys.A, body: { ...body(), manufacturerId: orgs.Q } })
      expect(noGrant.status).to.equal(422)
      expect(noGrant.body.errors[0].field).to.equal('manufacturerId')
      const asPublisher = await h.call('POST', '/v1/deals', { key: keys.P, body: body() })
      expect(asPublisher.status).to.equal(403)
    })

    it('honours Idempotency-Key', async () => {
      const b = body()
      const headers = { 'Idempotency-Key': `deal-${randomUUID()}` }
      const first = await h.call('POST', '/v1/deals', { key: keys.A, body: b, headers })
      const again = await h.call('POST', '/v1/deals', { key: keys.A, body: b, headers })
      expect(first.status).to.equal(201)
      expect(again.status).to.equal(201)
      expect(again.headers.get('idempotent-replayed')).to.equal('true')
      expect(again.body.id).to.equal(first.body.id)
      expect(await h.cp.cols.deals.countDocuments({ partnerReference: b.partnerReference })).to.equal(1)
    })

    it('a partner sees its own, the publisher those registered with it, others 404; GET shows history', async () => {
      const d = await register('A')
      await must('P', d.id, 'review')
      for (const [who, status] of [
        ['A', 200],
        ['P', 200],
        ['B', 404],
        ['Q', 404],
      ] as const) {
        expect((await h.call('GET', `/v1/deals/${d.id}`, { key: keys[who] })).status, who).to.equal(status)
      }
      const got = await h.call('GET', `/v1/deals/${d.id}`, { key: keys.A })
      expect(got.body.history.map((s: { action: string }) => s.action)).to.deep.equal(['submit', 'review'])
      expect(got.body.allowedActions).to.deep.equal(['cancel'])
      const listB = await h.call('GET', '/v1/deals', { key: keys.B })
      expect(listB.body.items.map((x: { id: string }) => x.id)).to.not.include(d.id)
      const listP = await h.call('GET', `/v1/deals?partnerId=${orgs.A}&state=under_review`, { key: keys.P })
      expect(listP.body.items.map((x: { id: string }) => x.id)).to.include(d.id)
      expect((await act('B', d.id, 'cancel')).status, 'another partner cannot act on it').to.equal(404)
    })
  })

  describe('the state machine: every state × action', () => {
    // The rules of issue 19, written out here rather than read from the code under test.
    const ALLOWED: Record<DealState, string[]> = {
      submitted: ['review', 'approve', 'reject', 'return', 'cancel'],
      conflict_review: ['review', 'approve', 'reject', 'return', 'cancel', 'release'],
      under_review: ['approve', 'reject', 'return', 'cancel'],
      returned: ['resubmit', 'cancel'],
      approved: ['won', 'lost', 'expire', 'cancel', 'remind'],
      rejected: [],
      won: [],
      lost: [],
      expired: [],
      cancelled: [],
    }
    const ACTIONS: Array<[string, 'A' | 'P' | 'platform']> = [
      ['resubmit', 'A'],
      ['cancel', 'A'],
      ['review', 'P'],
      ['approve', 'P'],
      ['reject', 'P'],
      ['return', 'P'],
      ['won', 'P'],
      ['lost', 'P'],
      ['expire', 'platform'],
      ['release', 'platform'],
      ['remind', 'platform'],
    ]
    /** A fresh deal in the state (its own customer, so approvals never meet). */
    const inState = async (state: DealState): Promise<string> => {
      if (state === 'conflict_review') {
        const domain = `cr-${randomUUID().slice(0, 8)}.example`
        await register('B', { domain })
        const d = await register('A', { domain })
        expect(d.state).to.equal('conflict_review')
        return d.id
      }
      const d = await register('A')
      const path: Record<DealState, Array<[string, 'A' | 'P' | 'platform']>> = {
        submitted: [],
        conflict_review: [],
        under_review: [['review', 'P']],
        returned: [['return', 'P']],
        approved: [['approve', 'P']],
        rejected: [['reject', 'P']],
        won: [
          ['approve', 'P'],
          ['won', 'P'],
        ],
        lost: [
          ['approve', 'P'],
          ['lost', 'P'],
        ],
        expired: [
          ['approve', 'P'],
          ['expire', 'platform'],
        ],
        cancelled: [['cancel', 'A']],
      }
      for (const [a, who] of path[state]) {
        if (who === 'platform') await h.cp.registry.deals.store.step(d.id, a as never, platform, { actor: 'platform' })
        else await must(who, d.id, a)
      }
      return d.id
    }

    for (const state of Object.keys(ALLOWED) as DealState[]) {
      it(`${state}: allows exactly ${ALLOWED[state].join(', ') || 'nothing'}`, async () => {
        for (const [action, who] of ACTIONS) {
          const id = await inState(state)
          const allowed = ALLOWED[state].includes(action)
          if (who === 'platform') {
            const r = await h.cp.registry.deals.store.step(id, action as never, platform, { actor: 'platform' }).then(
              () => 'ok',
              (e: Error) => e.message,
            )
            expect(r, `${state} × ${action}`).to.equal(allowed ? 'ok' : r === 'ok' ? 'refused' : r)
            if (!allowed) expect(r).to.include(`is ${state}`)
            continue
          }
          const r = await act(who, id, action, action === 'resubmit' ? { changes: { amount: '30.00' } } : {})
          if (allowed) {
            expect(r.status, `${state} × ${action}: ${r.text}`).to.equal(200)
          } else {
            expect(r.status, `${state} × ${action}: ${r.text}`).to.equal(409)
            expect(r.body.currentState).to.equal(state)
            const mine = who === 'A' ? ['resubmit', 'cancel'] : ['review', 'approve', 'reject', 'return', 'won', 'lost']
            expect(r.body.allowedActions, `${state} × ${action}`).to.have.members(
              ALLOWED[state].filter((a) => mine.includes(a)),
            )
            expect(r.body.detail).to.include(state)
          }
        }
      })
    }

    it("neither side takes the other's actions (409 naming the caller's own allowed actions)", async () => {
      const d = await register('A')
      const r = await act('A', d.id, 'approve')
      expect(r.status).to.equal(409)
      expect(r.body.allowedActions).to.deep.equal(['cancel'])
      const p = await act('P', d.id, 'cancel')
      expect(p.status).to.equal(409)
      expect(p.body.allowedActions).to.deep.equal(['review', 'approve', 'reject', 'return'])
    })
  })

  describe('conflicts', () => {
    it('subdomain vs domain (multi-label suffix too): the partner learns a conflict, the publisher which', async () => {
      const first = await register('A', { domain: 'contoso-x1.co.uk' })
      const second = await register('B', { domain: 'https://shop.Contoso-X1.co.uk/path' })
      expect(second.state).to.equal('conflict_review')
      expect(second.conflict).to.equal(true)
      expect(second).to.not.have.property('conflictsWith')
      const asP = await h.call('GET', `/v1/deals/${second.id}`, { key: keys.P })
      expect(asP.body.conflictsWith).to.deep.equal([first.id])
      // another registrable domain under the same public suffix is another customer
      expect((await register('B', { domain: 'other-x1.co.uk' })).state).to.equal('submitted')
    })

    it('without a domain: the normalized name and country', async () => {
      const tag = randomUUID().slice(0, 6)
      await register('A', { domain: null, name: `Fabrikam ${tag} GmbH`, country: 'AT' })
      expect((await register('B', { domain: null, name: `fabrikam ${tag}`, country: 'AT' })).state).to.equal(
        'conflict_review',
      )
      expect(
        (await register('B', { domain: null, name: `Fabrikam ${tag}`, country: 'CH' })).state,
        'another country',
      ).to.equal('submitted')
    })

    it('no product in common: no conflict', async () => {
      const domain = `np-${randomUUID().slice(0, 8)}.example`
      await register('A', { domain, skus: ['SKU-1', 'SKU-2'] })
      expect((await register('B', { domain, skus: ['SKU-3'] })).state).to.equal('submitted')
      expect((await register('B', { domain, skus: ['SKU-3', 'SKU-2'] })).state).to.equal('conflict_review')
    })

    it('an expired approval (or a settled one) no longer conflicts', async () => {
      const domain = `ex-${randomUUID().slice(0, 8)}.example`
      const first = await register('A', { domain })
      await must('P', first.id, 'approve')
      expect((await register('B', { domain })).state).to.equal('conflict_review')
      await h.cp.cols.deals.updateOne({ _id: first.id }, { $set: { protectionExpiresAt: new Date(Date.now() - 1000) } })
      expect((await register('B', { domain })).state, 'protection ended (before the job ran)').to.equal(
        'conflict_review',
      ) // the earlier pending one still does
      const domain2 = `ex2-${randomUUID().slice(0, 8)}.example`
      const old = await register('A', { domain: domain2 })
      await must('P', old.id, 'approve')
      await h.cp.cols.deals.updateOne({ _id: old.id }, { $set: { protectionExpiresAt: new Date(Date.now() - 1000) } })
      expect((await register('B', { domain: domain2 })).state).to.equal('submitted')
    })

    it('a returned registration resubmitted into a conflict goes to conflict_review', async () => {
      const domain = `rs-${randomUUID().slice(0, 8)}.example`
      const mine = await register('A', { skus: ['SKU-9'] })
      await must('P', mine.id, 'return')
      const theirs = await register('B', { domain })
      const r = await act('A', mine.id, 'resubmit', {
        changes: { endCustomer: { name: 'Moved', domain: `www.${domain}`, country: 'DE' } },
      })
      expect(r.status, r.text).to.equal(200)
      expect(r.body.state).to.equal('submitted') // SKU-9 is not registered by B
      await must('P', mine.id, 'return')
      await must('P', theirs.id, 'approve') // registered after mine, so only its approval blocks mine
      const again = await act('A', mine.id, 'resubmit', { changes: { lines: [{ sku: 'SKU-1', quantity: 1 }] } })
      expect(again.body.state).to.equal('conflict_review')
    })
  })

  describe('concurrency', () => {
    it('concurrent submissions and approvals of one opportunity: at most one approved', async () => {
      const domain = `cc-${randomUUID().slice(0, 8)}.example`
      const subs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => register(i % 2 ? 'A' : 'B', { domain, skus: ['SKU-1', `SKU-X${i}`] })),
      )
      const answers = await Promise.all(subs.map((s) => act('P', s.id, 'approve')))
      const approved = answers.filter((a) => a.status === 200)
      expect(approved.length, answers.map((a) => a.status).join(',')).to.equal(1)
      for (const a of answers.filter((x) => x.status !== 200)) expect(a.status, a.text).to.equal(409)
      const inStore = await h.cp.cols.deals.countDocuments({ customerKey: `d:${domain}`, state: 'approved' })
      expect(inStore).to.equal(1)
    })

    it('the same deal approved twice at once: one step, one event', async () => {
      const d = await register('A')
      const answers = await Promise.all([
        act('P', d.id, 'approve'),
        act('P', d.id, 'approve'),
        act('P', d.id, 'reject'),
      ])
      expect(answers.filter((a) => a.status === 200).length).to.equal(1)
      const got = await h.call('GET', `/v1/deals/${d.id}`, { key: keys.P })
      expect(got.body.history).to.have.length(2)
      const claims = await h.cp.cols.dealClaims.countDocuments({ dealId: d.id })
      expect(claims).to.equal(got.body.state === 'approved' ? 1 : 0)
    })
  })

  describe('expiry', () => {
    it('two job instances at once: expired once, reminded once, waiting registrations released', async () => {
      const domain = `xp-${randomUUID().slice(0, 8)}.example`
      const held = await register('A', { domain })
      await must('P', held.id, 'approve')
      const waiting = await register('B', { domain })
      expect(waiting.state).to.equal('conflict_review')
      const soon = await register('A')
      await must('P', soon.id, 'approve')
      const day = 86_400_000
      await h.cp.cols.deals.updateOne({ _id: held.id }, { $set: { protectionExpiresAt: new Date(Date.now() - 1000) } })
      await h.cp.cols.deals.updateOne(
        { _id: soon.id },
        { $set: { protectionExpiresAt: new Date(Date.now() + 3 * day) } },
      )
      const jobs = [
        new DealExpiry(h.cp.registry.deals, h.cp.registry.leads, quietLogger),
        new DealExpiry(h.cp.registry.deals, h.cp.registry.leads, quietLogger),
      ]
      const results = await Promise.all([...jobs, ...jobs].map((j) => j.runOnce()))
      const d = (id: string) => h.call('GET', `/v1/deals/${id}`, { key: keys.P }).then((r) => r.body)
      const heldNow = await d(held.id)
      expect(heldNow.state).to.equal('expired')
      expect(heldNow.history.filter((s: { action: string }) => s.action === 'expire')).to.have.length(1)
      const waitingNow = await d(waiting.id)
      expect(waitingNow.state).to.equal('under_review')
      expect(waitingNow.history.filter((s: { action: string }) => s.action === 'release')).to.have.length(1)
      const soonNow = await d(soon.id)
      expect(soonNow.state).to.equal('approved')
      expect(soonNow.history.filter((s: { action: string }) => s.action === 'remind')).to.have.length(1)
      expect(results.reduce((s, r) => s + r.expired, 0)).to.be.at.least(1)
      expect(await h.cp.cols.dealClaims.countDocuments({ dealId: held.id })).to.equal(0)
      // the released registration may now be approved: the claim is free
      expect((await act('P', waiting.id, 'approve')).status).to.equal(200)
    })

    it('applies a step decided but not applied (a crash between its writes), also a first one', async () => {
      // a crash after the approval's transition, before the deal's document: the document is set back
      const approved = await register('A', { domain: `rf-${randomUUID().slice(0, 8)}.example` })
      await must('P', approved.id, 'approve')
      const after = (await h.cp.cols.deals.findOne({ _id: approved.id }))!
      await h.cp.cols.deals.updateOne(
        { _id: approved.id },
        { $set: { state: 'submitted', version: after.version - 1 } },
      )
      await h.cp.cols.dealOutbox.deleteMany({ _id: { $regex: `^${approved.id}` } })
      // a crash after a registration's first transition, before its document
      const lost = await register('B', { domain: `rf-${randomUUID().slice(0, 8)}.example` })
      await h.cp.cols.deals.deleteOne({ _id: lost.id })
      await h.cp.cols.dealOutbox.deleteMany({ _id: { $regex: `^${lost.id}` } })

      const result = await new DealExpiry(h.cp.registry.deals, h.cp.registry.leads, quietLogger).runOnce()
      expect(result.rolledForward).to.be.at.least(2)
      const raw = (id: string) => h.cp.cols.deals.findOne({ _id: id })
      expect((await raw(approved.id))?.state).to.equal('approved')
      expect((await raw(approved.id))?.version).to.equal(after.version)
      expect((await raw(lost.id))?.state).to.equal(lost.state)
      // a second pass leaves them as they are
      await new DealExpiry(h.cp.registry.deals, h.cp.registry.leads, quietLogger).runOnce()
      expect((await raw(approved.id))?.version).to.equal(after.version)
      expect((await raw(lost.id))?.version).to.equal(1)
      // and the partner sees both through the API
      expect((await h.call('GET', `/v1/deals/${lost.id}`, { key: keys.B })).status).to.equal(200)
    })

    it("protection days come from the publisher's program (profile.dealProgram), default 90", async () => {
      const d = await register('A')
      const a = await must('P', d.id, 'approve')
      const days = (new Date(a.protectionExpiresAt).getTime() - Date.now()) / 86_400_000
      expect(days).to.be.within(89.9, 90.1)
      await h.call('PATCH', `/v1/organizations/${orgs.P}`, {
        key: keys.P,
        body: { profile: { dealProgram: { protectionDays: 30 } } },
      })
      const e = await register('A')
      const b = await must('P', e.id, 'approve')
      expect((new Date(b.protectionExpiresAt).getTime() - Date.now()) / 86_400_000).to.be.within(29.9, 30.1)
      await h.call('PATCH', `/v1/organizations/${orgs.P}`, { key: keys.P, body: { profile: {} } })
    })
  })

  describe('inbound connector (the CRM decides)', () => {
    let connector: { id: string; secret: string; url: string }
    const sign = (
      raw: string,
      id = `msg_${randomUUID()}`,
      ts = Math.floor(Date.now() / 1000),
      secret = connector.secret,
    ) => {
      const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
      const sig = createHmac('sha256', key).update(`${id}.${ts}.${raw}`).digest('base64')
      return { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` }
    }
    const post = (payload: unknown, headers?: Record<string, string>) => {
      const raw = JSON.stringify(payload)
      return h.call('POST', connector.url, { key: null, rawBody: raw, headers: headers ?? sign(raw) })
    }

    before(async () => {
      const r = await h.call('POST', '/v1/inbound-connectors', {
        key: keys.P,
        body: {
          name: 'sf',
          mapping: '{ "dealId": Deal_Registration_Id__c, "action": $lowercase(Decision__c), "reason": Comment__c }',
        },
      })
      expect(r.status, r.text).to.equal(201)
      expect(r.body.secret).to.match(/^whsec_/)
      connector = r.body
      expect(
        (await h.call('GET', `/v1/inbound-connectors/${connector.id}`, { key: keys.P })).body,
      ).to.not.have.property('secret')
      expect((await h.call('GET', `/v1/inbound-connectors/${connector.id}`, { key: keys.Q })).status).to.equal(404)
      expect(
        (await h.call('POST', '/v1/inbound-connectors', { key: keys.P, body: { name: 'bad', mapping: '{ "a": ' } }))
          .body.errors[0].field,
      ).to.equal('mapping')
    })

    it('a bad signature (or none, or an old timestamp) is a 401 and changes nothing', async () => {
      const d = await register('A')
      const payload = { Deal_Registration_Id__c: d.id, Decision__c: 'APPROVE' }
      const raw = JSON.stringify(payload)
      const wrongKey = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
      for (const headers of [
        sign(raw, undefined, undefined, wrongKey),
        {},
        sign(raw, undefined, Math.floor(Date.now() / 1000) - 3600),
        sign(raw + ' '),
      ]) {
        const r = await h.call('POST', connector.url, { key: null, rawBody: raw, headers })
        expect(r.status, r.text).to.equal(401)
      }
      expect((await h.cp.cols.deals.findOne({ _id: d.id }))!.state).to.equal('submitted')
    })

    it('approves through the mapping; replays and repeated decisions change nothing twice', async () => {
      const d = await register('A')
      const payload = { Deal_Registration_Id__c: d.id, Decision__c: 'Approve', Comment__c: 'good fit' }
      const raw = JSON.stringify(payload)
      const headers = sign(raw)
      const first = await h.call('POST', connector.url, { key: null, rawBody: raw, headers })
      expect(first.status, first.text).to.equal(200)
      expect(first.body).to.include({ dealId: d.id, state: 'approved', applied: true })
      const replay = await h.call('POST', connector.url, { key: null, rawBody: raw, headers })
      expect(replay.status).to.equal(200)
      expect(replay.body.replayed).to.equal(true)
      const dup = await post(payload)
      expect(dup.status, dup.text).to.equal(200)
      expect(dup.body.applied).to.equal(false)
      const got = await h.call('GET', `/v1/deals/${d.id}`, { key: keys.A })
      expect(got.body.history.map((s: { action: string; via: string }) => `${s.action}/${s.via}`)).to.deep.equal([
        'submit/api',
        'approve/inbound',
      ])
      expect(got.body.decisionReason).to.equal('good fit')
      const illegal = await post({ Deal_Registration_Id__c: d.id, Decision__c: 'return' })
      expect(illegal.status).to.equal(409)
      expect(illegal.body.currentState).to.equal('approved')
    })

    it("an unknown deal (or another publisher's) is a 404 naming dealId; a bad mapping result a 422", async () => {
      const unknown = await post({ Deal_Registration_Id__c: randomUUID(), Decision__c: 'approve' })
      expect(unknown.status).to.equal(404)
      expect(unknown.body.errors[0].field).to.equal('dealId')
      const badAction = await post({ Deal_Registration_Id__c: randomUUID(), Decision__c: 'delete' })
      expect(badAction.status).to.equal(422)
      expect(badAction.body.errors[0].field).to.equal('action')
      const noConnector = await h.call('POST', '/v1/inbound/inb_000000000000000000000000', {
        key: null,
        rawBody: '{}',
        headers: sign('{}'),
      })
      expect(noConnector.status).to.equal(404)
    })

    it('changes its mapping and rotates its secret: the old one is accepted during the overlap only', async () => {
      const forged = await h.call('POST', '/v1/inbound-connectors', {
        key: keys.P,
        body: { name: 'crm-x', publisherId: orgs.Q },
      })
      expect(forged.status, forged.text).to.equal(422)
      expect(forged.body.errors[0].field).to.equal('publisherId')
      const created = await h.call('POST', '/v1/inbound-connectors', { key: keys.P, body: { name: 'crm-2' } })
      expect(created.status, created.text).to.equal(201)
      const c = created.body as { id: string; secret: string; url: string }
      const call = (payload: unknown, secret: string) => {
        const raw = JSON.stringify(payload)
        return h.call('POST', c.url, { key: null, rawBody: raw, headers: sign(raw, undefined, undefined, secret) })
      }
      const path = `/v1/inbound-connectors/${c.id}`

      // a change is validated field by field, and only the owner sees the connector
      const badMapping = await h.call('PATCH', path, { key: keys.P, body: { mapping: '{ "dealId": ' } })
      expect(badMapping.status).to.equal(422)
      expect(badMapping.body.errors[0].field).to.equal('mapping')
      const empty = await h.call('PATCH', path, { key: keys.P, body: {} })
      expect(empty.status).to.equal(400)
      const tooTolerant = await h.call('PATCH', path, { key: keys.P, body: { toleranceSeconds: 5 } })
      expect(tooTolerant.status).to.equal(400)
      expect(JSON.stringify(tooTolerant.body.errors)).to.include('toleranceSeconds')
      expect((await h.call('PATCH', path, { key: keys.Q, body: { name: 'x' } })).status).to.equal(404)
      const changed = await h.call('PATCH', path, {
        key: keys.P,
        body: { name: 'crm-2b', mapping: '{ "dealId": Id, "action": $lowercase(Decision) }' },
      })
      expect(changed.status, changed.text).to.equal(200)
      expect(changed.body).to.include({ name: 'crm-2b', url: c.url })
      expect(changed.body).to.not.have.property('secret')
      const d = await register('A')
      const approved = await call({ Id: d.id, Decision: 'APPROVE' }, c.secret)
      expect(approved.status, approved.text).to.equal(200)
      expect(approved.body).to.include({ state: 'approved', applied: true })

      // rotation: a new secret, shown once; the old one still accepted for the overlap
      expect((await h.call('POST', `${path}/secret/rotate`, { key: keys.Q, body: {} })).status).to.equal(404)
      const rotated = await h.call('POST', `${path}/secret/rotate`, { key: keys.P, body: { overlapSeconds: 3600 } })
      expect(rotated.status, rotated.text).to.equal(201)
      const second = rotated.body.secret as string
      expect(second)
        .to.match(/^whsec_/)
        .and.not.equal(c.secret)
      expect(rotated.body.previousSecrets).to.have.length(1)
      const until = new Date(rotated.body.previousSecrets[0].expiresAt).getTime()
      expect(until - Date.now()).to.be.within(3590_000, 3600_000)
      expect((await h.call('GET', path, { key: keys.P })).body).to.not.have.property('secret')
      const unknown = { Id: randomUUID(), Decision: 'approve' }
      expect((await call(unknown, c.secret)).status, 'old secret, in the overlap').to.equal(404)
      expect((await call(unknown, second)).status, 'new secret').to.equal(404)

      // a rotation without overlap (a leaked secret): every earlier secret is refused at once
      const third = await h.call('POST', `${path}/secret/rotate`, { key: keys.P, body: { overlapSeconds: 0 } })
      expect(third.status, third.text).to.equal(201)
      expect(third.body.previousSecrets).to.deep.equal([])
      expect((await call(unknown, c.secret)).status).to.equal(401)
      expect((await call(unknown, second)).status).to.equal(401)
      expect((await call(unknown, third.body.secret as string)).status).to.equal(404)
      // the sweep removes the secrets whose overlap has ended (the store has no TTL index for them)
      expect((await h.cp.cols.inboundConnectors.findOne({ _id: c.id }))!.previousSecrets).to.have.length(2)
      await h.cp.sweep(new Date(Date.now() + 1000))
      expect((await h.cp.cols.inboundConnectors.findOne({ _id: c.id }))!.previousSecrets).to.deep.equal([])
      expect(
        (await h.call('POST', `${path}/secret/rotate`, { key: keys.P, body: { overlapSeconds: -1 } })).status,
      ).to.equal(400)
    })
  })
})
