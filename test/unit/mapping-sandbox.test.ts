/**
 * The JSONata mapping sandbox (consumers/rest/mapping-sandbox.ts): the same bodies as evaluating in
 * this process, and hostile mappings (a catastrophic regular expression, a loop, a 300 MB string, a
 * huge result) failing their own event with a DataError naming the limit while this process and the
 * other subscriptions' mappings carry on.
 */
import { expect } from 'chai'
import jsonata from 'jsonata'
import { DataError, RetriableError, type SyndicationError } from '../../common/errors.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import { KILL_GRACE_MS, MappingSandbox, mappingInput } from '../../consumers/rest/index.ts'

const rec = (value: unknown, n = 1): SinkRecord => ({
  topic: 'levels',
  partition: 1,
  offset: String(n),
  key: `k${n}`,
  value,
  headers: {},
  eventId: `evt-${n}`,
  eventType: 'inventory.level.changed',
  timestamp: Date.UTC(2026, 0, 1, 0, 0, n),
})

/** Backtracks 2^40 ways in V8's irregexp (26 a's already take 5 s): one step jsonata's own timeout cannot interrupt. */
const CATASTROPHIC_REGEX = '$match("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /(a+)+$/)'
/**
 * Flattens a 300 MB string in one allocation: a worker thread with resourceLimits takes its whole process down with it.
 */
const HUGE_STRING = '$uppercase($pad("", 300000000))'
const TIME_LIMIT_MS = 250

const failure = (p: Promise<unknown>): Promise<SyndicationError> =>
  p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e: unknown) => e as SyndicationError,
  )

describe('JSONata mapping sandbox', function () {
  this.timeout(30_000)
  let sandbox: MappingSandbox
  const map = (owner: string, source: string, r: SinkRecord) => sandbox.map(owner, source, mappingInput(r), r.eventId)

  const SETTINGS = { processes: 2, timeLimitMs: TIME_LIMIT_MS, memoryLimitMb: 64, maxOutputBytes: 100_000 }
  /**
   * Dying of the heap limit takes the sandbox ~200 ms: a longer time limit lets it die of that, not of its deadline, on
   * a busy machine.
   */
  const roomToDie = async () => {
    await sandbox.close()
    sandbox = new MappingSandbox({ ...SETTINGS, timeLimitMs: 2000 })
  }

  beforeEach(() => {
    sandbox = new MappingSandbox(SETTINGS)
  })
  afterEach(() => sandbox.close())

  it('gives the bodies evaluating in this process gives, many events per request', async () => {
    const expressions = [
      '{ "externalId": value.sku, "qty": value.available, "id": eventId, "at": ' +
        'timestamp, "where": topic & "/" & partition & "@" & offset }',
      'value',
      'value.incoming[quantity > 10].{ "q": quantity, "on": $fromMillis(expectedAt) }',
      '$string(value.available * 1.5) & " " & $uppercase(value.sku) & " " & $formatNumber(value.available, "#,##0.00")',
      '{ "skus": $distinct(value.tags), "n": $count(value.tags), "sum": ' +
        '$sum(value.incoming.quantity), "re": $replace(value.sku, /-(\\d+)/, "#$1") }',
      'key = "k3" ? { "third": true } : [value.sku, value.available]',
    ]
    const records = [...Array(12).keys()].map((i) =>
      rec(
        {
          sku: `sku-${i}`,
          available: i * 7,
          tags: ['a', i % 2 ? 'b' : 'a', 'c'],
          incoming: [
            { quantity: 5 + i, expectedAt: 1_700_000_000_000 + i },
            { quantity: 50, expectedAt: 1_800_000_000_000 },
          ],
        },
        i,
      ),
    )
    for (const expr of expressions) {
      const inProcess = await Promise.all(
        records.map(async (r) => JSON.stringify(await jsonata(expr).evaluate(JSON.parse(mappingInput(r))))),
      )
      // concurrent calls of one subscription: the first goes alone, the others wait for it and go together
      const sandboxed = await Promise.all(records.map((r) => map('sub-a', expr, r)))
      expect(sandboxed, expr).to.deep.equal(inProcess)
    }
  })

  it(
    'kills a catastrophic regular expression at its time limit: a DataError ' +
      'naming the subscription and the limit; the process is replaced',
    async () => {
      const started = Date.now()
      const err = await failure(map('sub-hostile', CATASTROPHIC_REGEX, rec({})))
      const tookMs = Date.now() - started
      expect(err).to.be.instanceOf(DataError)
      expect(err.message).to.equal(
        `body mapping failed for event evt-1: the mapping of subscription ` +
          `sub-hostile exceeded its ${TIME_LIMIT_MS} ms time limit`,
      )
      expect(err.context).to.include({ mappingError: 'time-limit', limit: TIME_LIMIT_MS })
      expect(sandbox.replaced.time).to.equal(1)
      // the limit plus the grace, plus starting a process (~50 ms) on a busy machine
      expect(tookMs).to.be.within(TIME_LIMIT_MS, TIME_LIMIT_MS + KILL_GRACE_MS + 2000)
      // the sandbox works on: a fresh process answers the next mapping
      expect(await map('sub-hostile', 'value.sku', rec({ sku: 'after' }))).to.equal('"after"')
    },
  )

  it("stops an endless loop with jsonata's own timeout, without killing the process", async () => {
    const err = await failure(map('sub-loop', '( $f := function($n){ $f($n + 1) }; $f(0) )', rec({})))
    expect(err).to.be.instanceOf(DataError)
    expect(err.message).to.include(`exceeded its ${TIME_LIMIT_MS} ms time limit`)
    expect(sandbox.replaced).to.deep.equal({ time: 0, memory: 0, crash: 0 })
  })

  it(
    'contains a 300 MB string: the sandbox process dies of its heap limit, this ' +
      'one carries on, the event fails naming the memory limit',
    async () => {
      await roomToDie()
      const rssBefore = process.memoryUsage().rss
      const err = await failure(map('sub-huge', HUGE_STRING, rec({})))
      expect(err).to.be.instanceOf(DataError)
      expect(err.message).to.equal(
        'body mapping failed for event evt-1: the mapping of subscription sub-huge exceeded its 64 MB memory limit',
      )
      expect(err.context).to.include({ mappingError: 'memory-limit', limit: 64 })
      expect(sandbox.replaced.memory).to.equal(1)
      expect(process.memoryUsage().rss - rssBefore, 'this process did not hold the string').to.be.below(
        100 * 1024 * 1024,
      )
      expect(await map('sub-huge', '$pad("x", 3)', rec({}))).to.equal('"x  "')
    },
  )

  it(
    'refuses a body over the output limit in the sandbox, before writing it out ' +
      '(also a 300 MB one under a large heap)',
    async () => {
      const err = await failure(map('sub-big', '$pad("", 100001)', rec({})))
      expect(err).to.be.instanceOf(DataError)
      expect(err.message).to.include('subscription sub-big produced more than its 100000-byte output limit')
      expect(err.context).to.include({ mappingError: 'output-limit' })
      // counted in UTF-8 bytes: 60,000 two-byte characters are 120,002 bytes of JSON
      const utf8 = await failure(map('sub-big', '$pad("", 60000, "é")', rec({})))
      expect(utf8.message).to.include('produced 120002 bytes, more than its 100000-byte output limit')
      // the process lives on: the 300 MB string was never flattened
      const big = new MappingSandbox({ timeLimitMs: 2000, memoryLimitMb: 64, maxOutputBytes: 1024 * 1024 })
      try {
        const e = await failure(big.map('sub-big', '{ "s": $pad("", 300000000) }', mappingInput(rec({})), 'evt-1'))
        expect(e.context).to.include({ mappingError: 'output-limit' })
        expect(big.replaced).to.deep.equal({ time: 0, memory: 0, crash: 0 })
      } finally {
        await big.close()
      }
      expect(sandbox.replaced).to.deep.equal({ time: 0, memory: 0, crash: 0 })
    },
  )

  it('dead-letters only the event that exceeds a limit when it shared a request with others', async () => {
    await roomToDie()
    const expr =
      `value.hostile = "regex" ? ${CATASTROPHIC_REGEX} : value.hostile = "memory" ` +
      `? ${HUGE_STRING} : { "sku": value.sku }`
    const values = [
      { sku: 'a' },
      { sku: 'b', hostile: 'regex' },
      { sku: 'c' },
      { sku: 'd', hostile: 'memory' },
      { sku: 'e' },
    ]
    const outcomes = await Promise.allSettled(values.map((v, i) => map('sub-mixed', expr, rec(v, i))))
    expect(
      outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as DataError).context.mappingError)),
    ).to.deep.equal(['{"sku":"a"}', 'time-limit', '{"sku":"c"}', 'memory-limit', '{"sku":"e"}'])
  })

  it("keeps other subscriptions' mappings flowing while a hostile one holds a process", async () => {
    // ten hostile events queued: served alone one after the other they hold a process for about 3.5 s
    const hostile = [...Array(10).keys()].map((i) => failure(map('sub-hostile', CATASTROPHIC_REGEX, rec({}, i))))
    const waits: number[] = []
    const until = Date.now() + 1500
    for (let i = 0; Date.now() < until; i++) {
      const t = Date.now()
      expect(await map(`sub-healthy-${i % 3}`, '{ "sku": value.sku }', rec({ sku: `s${i}` }, i))).to.equal(
        `{"sku":"s${i}"}`,
      )
      waits.push(Date.now() - t)
      await new Promise((r) => setTimeout(r, 20))
    }
    const sorted = [...waits].sort((a, b) => a - b)
    console.log(
      `      healthy mappings while a hostile one runs: ${waits.length} ` +
        `evaluations, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ` +
        `${Math.max(...waits.slice(1))} ms after the first (${waits[0]} ms: a ` +
        `process starting)`,
    )
    // a healthy mapping never waits for the hostile one's kill (a few ms each; the first waits for a process to start)
    expect(Math.max(...waits.slice(1))).to.be.below(TIME_LIMIT_MS)
    const errors = await Promise.all(hostile)
    expect(errors.every((e) => e instanceof DataError && e.context.mappingError === 'time-limit')).to.equal(true)
  })

  it('drops an event whose delivery was aborted while it waited (retriable), and maps the others', async () => {
    const first = map('sub-a', '$count([1..20000].($ * 2))', rec({}, 1))
    const ac = new AbortController()
    const dropped = failure(sandbox.map('sub-a', 'value', mappingInput(rec({ n: 2 }, 2)), 'evt-2', ac.signal))
    const kept = map('sub-a', 'value', rec({ n: 3 }, 3))
    ac.abort()
    const err = await dropped
    expect(err).to.be.instanceOf(RetriableError)
    expect(err.context).to.include({ aborted: true })
    expect(await kept).to.equal('{"n":3}')
    expect(await first).to.equal('20000')
  })

  it('fails waiting and running evaluations retriably on close', async () => {
    const running = failure(map('sub-a', CATASTROPHIC_REGEX, rec({}, 1)))
    const waiting = failure(map('sub-a', 'value', rec({}, 2)))
    await new Promise((r) => setTimeout(r, 100))
    await sandbox.close()
    for (const err of await Promise.all([running, waiting])) expect(err).to.be.instanceOf(RetriableError)
    expect(await failure(map('sub-a', 'value', rec({}, 3)))).to.be.instanceOf(RetriableError)
    expect(sandbox.size).to.equal(0)
  })
})
