/** The REST sink's pure parts: URL templates, body mappings, configuration checks, the micro-batcher. */
import { expect } from 'chai'
import { DataError, RetriableError } from '../../common/errors.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import {
  BodyMapping,
  MappingSandbox,
  MicroBatcher,
  eventBody,
  mappingProblem,
  parseUrlTemplate,
  renderUrl,
  restSinkProblems,
  urlTemplateProblem,
} from '../../consumers/rest/index.ts'

const rec = (value: unknown, key: string | null = 'k1'): SinkRecord => ({
  topic: 't',
  partition: 2,
  offset: '7',
  key,
  value,
  headers: {},
  eventId: 'evt-1',
  eventType: 'inventory.level.changed',
  timestamp: 0,
})

describe('REST sink: URL templates', () => {
  it('substitutes key, envelope fields and value paths, each URL-encoded', () => {
    const t = parseUrlTemplate(
      'https://crm.example/api/{eventType}/{value.site.id}/stock/{value.sku}?k={key}&e={eventId}',
    )
    expect(renderUrl(t, rec({ sku: 'A/B ?#&', site: { id: 42 } }, 'k&1'))).to.equal(
      'https://crm.example/api/inventory.level.changed/42/stock/A%2FB%20%3F%23%26?k=k%261&e=evt-1',
    )
    expect(renderUrl(parseUrlTemplate('https://crm.example/api'), rec({}))).to.equal('https://crm.example/api')
  })

  it('refuses an event without a scalar, non-empty value for a placeholder (DataError)', () => {
    const t = parseUrlTemplate('https://crm.example/api/{value.sku}')
    for (const value of [{}, { sku: '' }, { sku: { a: 1 } }, null])
      expect(() => renderUrl(t, rec(value))).to.throw(DataError, '{value.sku}')
    expect(() => renderUrl(parseUrlTemplate('https://crm.example/{key}'), rec({}, null))).to.throw(DataError)
  })

  it('refuses placeholders in the host, unknown placeholders, stray braces, other schemes and credentials', () => {
    expect(urlTemplateProblem('https://crm.example/api/{value.sku}')).to.equal(null)
    expect(urlTemplateProblem('https://{key}.crm.example/api')).to.include('after the host')
    expect(urlTemplateProblem('https://crm.example:{key}/api')).to.not.equal(null)
    expect(urlTemplateProblem('https://crm.example/{sku}')).to.include('unknown placeholder {sku}')
    expect(urlTemplateProblem('https://crm.example/{key')).to.include('unbalanced')
    expect(urlTemplateProblem('ftp://crm.example/{key}')).to.include('http')
    expect(urlTemplateProblem('https://u:p@crm.example/{key}')).to.include('credentials')
    expect(urlTemplateProblem('not a url/{key}')).to.include('absolute')
  })
})

describe('REST sink: body mappings (JSONata)', () => {
  const sandbox = new MappingSandbox({ timeLimitMs: 250 })
  after(() => sandbox.close())

  it('maps the envelope; without a mapping the body is the value', async () => {
    const m = new BodyMapping(
      '{ "externalId": value.sku, "qty": value.available, "id": eventId, "key": ' +
        'key, "at": timestamp, "where": topic & "/" & partition & "@" & offset }',
      sandbox,
      'sub-1',
    )
    expect(JSON.parse(await eventBody(rec({ sku: 'S1', available: 5 }), m))).to.deep.equal({
      externalId: 'S1',
      qty: 5,
      id: 'evt-1',
      key: 'k1',
      at: '1970-01-01T00:00:00.000Z',
      where: 't/2@7',
    })
    expect(await eventBody(rec({ sku: 'S1' }), undefined)).to.equal('{"sku":"S1"}')
  })

  it('names the position of a syntax error and compiles valid expressions', () => {
    expect(mappingProblem('{ "a": value.sku }')).to.equal(null)
    const p = mappingProblem('{ "a": value.sku, }')!
    expect(p.position).to.be.a('number')
    expect(p.message).to.include(`position ${p.position}`)
    expect(mappingProblem('  ')!.message).to.include('empty')
  })

  it('fails one event with a DataError: $error, no result, a function, a runaway recursion', async () => {
    const cases = [
      '$error("nope")',
      'value.missing',
      'function($x){ $x }',
      '{ "f": function($x){ $x } }',
      '( $f := function($n){ $f($n + 1) }; $f(0) )',
    ]
    for (const expr of cases) {
      const m = new BodyMapping(expr, sandbox, 'sub-1')
      const err = await eventBody(rec({ sku: 'S1' }), m).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err, expr).to.be.instanceOf(DataError)
    }
  })
})

describe('REST sink: configuration problems', () => {
  it('names each field at fault', () => {
    const fields = restSinkProblems({
      url: 'https://crm.example/{nope}',
      method: 'GET',
      bodyMapping: '(',
      headers: { Authorization: 'x', 'bad name': 'y' },
      batchWaitMs: -1,
      auth: { type: 'basic', username: 'a:b' },
    }).map((p) => p.field)
    expect(fields).to.have.members([
      'url',
      'method',
      'bodyMapping',
      'headers.Authorization',
      'headers.bad name',
      'batchWaitMs',
      'auth.username',
      'auth.password',
    ])
    expect(
      restSinkProblems({
        url: 'https://crm.example/{key}',
        method: 'PUT',
        auth: { type: 'oauth2', tokenUrl: 'gopher://x', clientId: 'c', clientSecret: 's', clientAuth: 'x' },
      }).map((p) => p.field),
    ).to.have.members(['auth.tokenUrl', 'auth.clientAuth'])
    expect(
      restSinkProblems({ url: 'https://crm.example/{key}', method: 'PATCH', auth: { type: 'magic' } }).map(
        (p) => p.field,
      ),
    ).to.deep.equal(['auth.type'])
    expect(
      restSinkProblems({
        url: 'https://crm.example/{key}',
        method: 'POST',
        auth: { type: 'header', headerName: 'X-Api-Key', headerValue: 'v' },
      }),
    ).to.deep.equal([])
  })
})

describe('REST sink: micro-batcher', () => {
  it('flushes at maxEvents or after maxWaitMs, per group, settling each item with its own outcome', async () => {
    const sent: Array<[string, number[]]> = []
    const b = new MicroBatcher<number>(3, 30, async (group, items) => {
      sent.push([group, items])
      return items.map((i) => (i === 13 ? new DataError('bad 13') : undefined))
    })
    const all = [1, 2, 3, 4].map((i) => b.add('a', i))
    const other = b.add('b', 9)
    await Promise.all([...all, other])
    expect(sent).to.deep.equal(
      [
        ['a', [1, 2, 3]],
        ['a', [4]],
        ['b', [9]],
      ].sort((x, y) => (x[1] as number[])[0]! - (y[1] as number[])[0]!) as never,
    )
    const outcomes = await Promise.allSettled([b.add('a', 12), b.add('a', 13)])
    expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'rejected'])
  })

  it('drops an aborted item before its flush and fails waiting items on close (retriable)', async () => {
    const sent: number[][] = []
    const b = new MicroBatcher<number>(10, 50, async (_g, items) => (sent.push(items), items.map(() => undefined)))
    const ac = new AbortController()
    const aborted = b.add('a', 1, ac.signal)
    const kept = b.add('a', 2)
    ac.abort()
    const r = await aborted.then(
      () => 'ok',
      (e: unknown) => e,
    )
    expect(r).to.be.instanceOf(RetriableError)
    await kept
    expect(sent).to.deep.equal([[2]])
    const waiting = b.add('a', 3)
    b.close()
    expect(
      await waiting.then(
        () => 'ok',
        (e: unknown) => e,
      ),
    ).to.be.instanceOf(RetriableError)
    expect(
      await b.add('a', 4).then(
        () => 'ok',
        (e: unknown) => e,
      ),
    ).to.be.instanceOf(RetriableError)
  })
})
