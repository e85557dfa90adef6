/**
 * The console's pure parts: the escaping template, the cookie helpers, freshness, the schema diff and
 * the form validation against the OpenAPI document (the fields named as the API names them).
 */
import { expect } from 'chai'
import { html, raw, query, escapeHtml } from '../../console/html.ts'
import { cookie, cookiesOf, sameToken } from '../../console/sessions.ts'
import { freshness } from '../../console/status.ts'
import { avroFieldDiff } from '../../console/schemas.ts'
import { subscriptionBody } from '../../console/subscriptions.ts'
import { checkAgainstSchema } from '../../console/validate.ts'
import { RequestInvalidError } from '../../control-plane/errors.ts'
import type { ConnectorDoc } from '../../control-plane/types.ts'

describe('console', () => {
  it('escapes every interpolated value unless the code built it as markup', () => {
    const name = '<img src=x onerror="alert(1)">\'`&'
    expect(html`<p title="${name}">${name}</p>`.text).to.equal(
      '<p title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&#96;&amp;">' +
        '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&#96;&amp;</p>',
    )
    // prettier-ignore
    expect(html`<ul>${['<a>', html`<li>${'<b>'}</li>`]}</ul>`.text).to.equal('<ul>&lt;a&gt;<li>&lt;b&gt;</li></ul>')
    expect(html`${null}${undefined}${false}${0}${raw('<br>')}`.text).to.equal('0<br>')
    expect(escapeHtml('"')).to.equal('&quot;')
    expect(query({ a: 'x y', b: undefined, c: '', d: 2 })).to.equal('?a=x+y&d=2')
  })

  it('reads cookies and writes HttpOnly, SameSite=Strict ones, Secure only over TLS; compares tokens', () => {
    expect(cookiesOf('a=1; distributary_console=abc%3D; bad; =x')).to.deep.equal({
      a: '1',
      distributary_console: 'abc=',
    })
    expect(cookie('n', 'v', { secure: false, maxAgeSeconds: 60.7 })).to.equal(
      'n=v; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60',
    )
    expect(cookie('n', '', { secure: true, maxAgeSeconds: -1 })).to.equal(
      'n=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0; Secure',
    )
    expect(sameToken('abc', 'abc')).to.equal(true)
    expect(sameToken('abc', 'abd')).to.equal(false)
    expect(sameToken('', '')).to.equal(false)
    expect(sameToken(undefined, 'x')).to.equal(false)
  })

  it("says how fresh a view is from the worker's last report", () => {
    const at = (lag: number | null, freshnessSeconds?: number) =>
      ({ status: { lag, freshnessSeconds, reportedAt: new Date(10_000) } }) as unknown as ConnectorDoc
    expect(freshness(at(0), 11_200)).to.deep.equal({ text: '1.2 s old', behind: false, seconds: 1.2 })
    expect(freshness(at(0, 0), 11_200).text).to.equal('1.2 s old')
    expect(freshness(at(1234, 30), 12_000)).to.deep.equal({
      text: '32.0 s old (1,234 records waiting)',
      behind: true,
      seconds: 32,
    })
    expect(freshness(at(1, undefined), 12_000).text).to.equal('behind: 1 record waiting (as of 2.0 s ago)')
    expect(freshness(null).behind).to.equal(true)
  })

  it('diffs two Avro record versions by field', () => {
    const v1 = JSON.stringify({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'long' },
      ],
    })
    const v2 = JSON.stringify({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'a', type: 'string' },
        { name: 'b', type: ['null', 'long'], default: null },
        { name: 'c', type: 'int', default: 0 },
      ],
    })
    expect(avroFieldDiff(v1, v2)).to.deep.equal([
      { field: 'b', change: 'changed', from: '"long"', to: '["null","long"] = null' },
      { field: 'c', change: 'added', to: '"int" = 0' },
    ])
    expect(avroFieldDiff(v2, v1)!.map((d) => d.change)).to.deep.equal(['changed', 'removed'])
    expect(avroFieldDiff('"string"', '"string"')).to.equal(null)
  })

  it('validates the create form as the API does, naming the fields, each sink by its own schema', () => {
    const errors = (form: Record<string, string | string[]>) => {
      try {
        checkAgainstSchema('SubscriptionCreate', subscriptionBody(form))
        return []
      } catch (err) {
        expect(err).to.be.instanceOf(RequestInvalidError)
        return (err as RequestInvalidError).errors.map((e) => e.field)
      }
    }
    expect(errors({ name: 'Bad Name', sink_type: 'webhook', sink_url: 'https://a.example/h' })).to.deep.equal([
      'name',
      'eventTypes',
    ])
    expect(
      errors({
        name: 'ok',
        eventTypes: 'inventory.level.changed',
        sink_type: 'webhook',
        sink_url: 'https://a.example/h',
      }),
    ).to.deep.equal([])
    expect(
      errors({
        name: 'ok',
        eventTypes: ['inventory.level.changed'],
        sink_type: 'mongodb',
        sink_connectionString: 'mongodb://db.example',
        sink_database: '',
        sink_collection: 'c',
      }),
    ).to.deep.equal(['sink.database'])
    expect(
      subscriptionBody({
        name: 'x',
        sink_type: 'rest',
        sink_url: 'https://a.example/{key}',
        sink_method: 'PATCH',
        fields: 'sku, available,',
      }),
    ).to.deep.include({
      sink: { type: 'rest', url: 'https://a.example/{key}', method: 'PATCH' },
      fields: ['sku', 'available'],
    })
  })
})
