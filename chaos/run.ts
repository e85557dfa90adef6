/**
 * `npm run chaos` (full run) and `npm run chaos -- --short` (CI): the fault scenario of
 * chaos/scenario.ts on a stack of its own; prints the summary, writes report.json in the run's
 * folder, and exits 1 when a correctness check failed (timings never fail it), 2 on bad options.
 * See docs/chaos.md.
 */
import { ChaosOptionError, parseOptions, USAGE } from './options.ts'
import { formatReport } from './report.ts'
import { runChaos } from './scenario.ts'

async function main(): Promise<number> {
  let options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (err) {
    if (!(err instanceof ChaosOptionError)) throw err
    if (err.message) process.stderr.write(`chaos: ${err.message}\n\n`)
    process.stderr.write(USAGE)
    return err.message ? 2 : 0
  }
  // Ctrl-C or a CI timeout: stop here; runChaos's cleanup stops what it started (its finally runs as
  // the pending waits reject), so exit only after it.
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    process.stderr.write(`chaos: ${signal}: stopping the run and cleaning up\n`)
    abort.abort(new Error(`interrupted by ${signal}`))
  }
  const abort = new AbortController()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const report = await runChaos({ ...options, signal: abort.signal })
  process.stdout.write(formatReport(report) + '\n')
  return report.passed ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`chaos failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
