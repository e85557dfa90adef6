/**
 * The short chaos scenario (`npm run chaos -- --short`, chaos/scenario.ts), run in this process: its
 * own three-broker stack and FerretDB on free ports, an api and two worker processes, every fault
 * once. The correctness checks must pass (nothing lost, nothing outside a grant, signatures, same-id
 * duplicates only, per-key order, no process crashed); its timings are printed, never asserted.
 * Whatever happens (a failure, a timeout), everything the run started is stopped: the run's own
 * cleanup, reached through its abort signal.
 */
import { expect } from 'chai'
import { parseOptions } from '../../chaos/options.ts'
import { formatReport, type ChaosReport } from '../../chaos/report.ts'
import { runChaos } from '../../chaos/scenario.ts'

describe('chaos: the short fault scenario', function () {
  this.timeout(15 * 60_000)
  const abort = new AbortController()
  let run: Promise<ChaosReport> | undefined

  after(async function () {
    this.timeout(5 * 60_000)
    abort.abort(new Error('the test ended'))
    await run?.catch(() => undefined)
  })

  it('delivers every entitled event to every partner, in order per key, through every fault', async () => {
    const options = parseOptions(['--short'], {}, (msg) => process.stdout.write(`  [chaos] ${msg}\n`))
    run = runChaos({ ...options, signal: abort.signal })
    const report = await run
    process.stdout.write(formatReport(report).replace(/^/gm, '  [chaos] ') + '\n')
    expect(
      report.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`),
      'failed checks',
    ).to.deep.equal([])
    expect(report.figures.accepted, 'events accepted').to.be.at.least(options.events)
    expect(report.figures.phases.map((p) => p.name)).to.include.members([
      'worker-kill-new-id',
      'worker-kill-same-id',
      'broker-kill',
      'broker-restart',
      'store-outage',
      'partner-failing',
      'partner-hanging',
      'partner-dns',
    ])
  })
})
