/**
 * What the chaos run checks and measures, from what the publishers got accepted and what each
 * partner's endpoint received.
 *
 * Checks (a failed one fails the run): every accepted event a partner is entitled to arrived there
 * at least once (with the grant's row filter applied); nothing outside a grant arrived (another
 * publisher's event, a filtered-out row, a projected-out field); every request's signature verified;
 * a repeated webhook-id carried the same body; per key, events arrived in sequence order; no platform
 * process exited by itself.
 *
 * Figures (reported, never failing: timings on a shared 2-core machine are noisy): events published
 * and accepted, delivered per partner, lost, duplicates, order violations, recovery time per fault
 * (from the fault's end until the affected partners had every event accepted before it), and the
 * healthy partners' p99 latency (202 to arrival) in the baseline and during each fault.
 */
import { percentile } from '../bench/helpers/latency.ts'
import { perKeyOrderViolations, type OrderViolation } from './deliveries.ts'
import type { Mode, Timings } from './options.ts'
import type { Partner, WebhookPayload } from './partners.ts'
import type { Accepted, PublisherStats } from './publisher.ts'

export interface PartnerSpec {
  name: string
  what: string
  /** Healthy partners' latencies are the p99 figures (the others have faults of their own). */
  healthy: boolean
  grants: Array<{ from: string; filter?: Record<string, { in: string[] }>; fields?: string[] }>
  /** Is the partner entitled to this accepted event (its grants, row filters included)? */
  entitled(e: Accepted): boolean
  /** Why a delivered payload is outside the partner's grants, if it is. */
  outside(p: WebhookPayload): string | undefined
}

export interface PhaseRecord {
  name: string
  what: string
  affects: string[]
  start: number
  end: number
  faultStart?: number
  faultEnd?: number
  notes: string[]
}

export interface AnalyseInput {
  mode: Mode
  runId: string
  runDir: string
  options: {
    events: number
    rate: number
    timings: Timings
    compressedTime: Record<string, string>
    deliveryPolicy: { retrySchedule: number[]; timeoutMs: number }
  }
  specs: PartnerSpec[]
  partners: Map<string, Partner>
  accepted: Map<string, Accepted>
  publishers: Array<{ name: string } & PublisherStats>
  phases: PhaseRecord[]
  drainMs: number
  platformLogs: string[]
  unexpectedExits: Array<{ name: string; pid: number; code: number | null; signal: string | null; log: string }>
}

export interface Check {
  name: string
  passed: boolean
  detail: string
}

export interface PartnerFigures {
  name: string
  what: string
  entitled: number
  delivered: number
  lost: number
  /** Acknowledged deliveries beyond the first of an event (all with the same webhook-id). */
  duplicates: number
  /** Arrivals of events that were not accepted (a request answered 503 whose events were stored after all). */
  unaccepted: number
  orderViolations: number
  problems: number
  /** First deliveries per second over the last 30 s before the analysis: tells a slow partner from a stalled one. */
  endRatePerSec: number
}

export interface PhaseFigures {
  name: string
  what: string
  faultMs: number | null
  /**
   * From the fault's end until the affected partners had every entitled event accepted before it; null: some never
   * arrived.
   */
  recoveryMs: number | null
  /** Healthy partners' deliveries of events accepted during the fault (the baseline: during the phase). */
  samples: number
  p50Ms: number | null
  p99Ms: number | null
  /** p99 over the baseline's p99 (goal ≤ 1.5). */
  p99Ratio: number | null
  notes: string[]
}

export interface LostEvent {
  partner: string
  id: string
  publisher: string
  key: string
  seq: number
  acceptedAt: string
  /** The phase in which it was accepted. */
  phase: string
  /** Requests with its id that reached the partner and were not acknowledged (500, hang). */
  unacknowledgedArrivals: number
}

export interface ChaosReport {
  passed: boolean
  mode: Mode
  runId: string
  runDir: string
  options: AnalyseInput['options']
  checks: Check[]
  figures: {
    requests: number
    accepted: number
    publishers: AnalyseInput['publishers']
    partners: PartnerFigures[]
    lost: number
    duplicates: number
    orderViolations: number
    baselineP99Ms: number | null
    phases: PhaseFigures[]
    drainMs: number
  }
  findings: {
    lost: LostEvent[]
    orderViolations: Array<{ partner: string } & OrderViolation>
    problems: Array<{ partner: string; kind: string; id: string; detail: string }>
    unexpectedExits: AnalyseInput['unexpectedExits']
  }
  phases: PhaseRecord[]
  platformLogs: string[]
}

const LIST_MAX = 50

function phaseAt(phases: PhaseRecord[], at: number): string {
  const p = phases.find((x) => at >= x.start && at < (x.end || Infinity))
  return p ? p.name : at < (phases[0]?.start ?? 0) ? 'before the first phase' : 'after the last phase'
}

export function analyse(input: AnalyseInput): ChaosReport {
  const { specs, partners, accepted, phases } = input
  const lost: LostEvent[] = []
  const orderViolations: ChaosReport['findings']['orderViolations'] = []
  const problems: ChaosReport['findings']['problems'] = []
  const partnerFigures: PartnerFigures[] = []
  for (const spec of specs) {
    const p = partners.get(spec.name)!
    let entitled = 0
    let delivered = 0
    let lostHere = 0
    for (const [id, e] of accepted) {
      if (!spec.entitled(e)) continue
      entitled++
      const a = p.arrivals.get(id)
      if (a && a.ack > 0) delivered++
      else {
        lostHere++
        lost.push({
          partner: spec.name,
          id,
          publisher: e.publisher,
          key: e.key,
          seq: e.seq,
          acceptedAt: new Date(e.at).toISOString(),
          phase: phaseAt(phases, e.at),
          unacknowledgedArrivals: a?.receipts ?? 0,
        })
      }
    }
    let duplicates = 0
    let unaccepted = 0
    let recent = 0
    const since = Date.now() - 30_000
    for (const [id, a] of p.arrivals) {
      if (a.ack > since) recent++
      duplicates += Math.max(0, a.acks - 1)
      if (!accepted.has(id)) unaccepted++
    }
    // per key, over the accepted events: their first arrivals in sequence order
    const violations = perKeyOrderViolations(
      (function* () {
        for (const id of p.order) {
          const e = accepted.get(id)
          if (e) yield { id, key: e.key, seq: e.seq }
        }
      })(),
    )
    // around the first step back only: a key has thousands of events in a full run
    for (const v of violations)
      orderViolations.push({
        partner: spec.name,
        key: v.key,
        at: v.at,
        seqs: v.seqs.slice(Math.max(0, v.at - 5), v.at + 5),
      })
    for (const pr of p.problems) problems.push({ partner: spec.name, ...pr })
    partnerFigures.push({
      name: spec.name,
      what: spec.what,
      entitled,
      delivered,
      lost: lostHere,
      duplicates,
      unaccepted,
      orderViolations: violations.length,
      problems: p.problems.length,
      endRatePerSec: recent / 30,
    })
  }

  // Latency of the healthy partners: from the 202 to the first acknowledged arrival.
  const healthy = specs.filter((s) => s.healthy)
  const latencies = (from: number, to: number): number[] => {
    const out: number[] = []
    for (const [id, e] of accepted) {
      if (e.at < from || e.at >= to) continue
      for (const spec of healthy) {
        if (!spec.entitled(e)) continue
        const a = partners.get(spec.name)!.arrivals.get(id)
        if (a && a.ack > 0) out.push(Math.max(0, a.ack - e.at))
      }
    }
    return out
  }
  const recovery = (ph: PhaseRecord): number | null => {
    if (ph.faultEnd === undefined || ph.affects.length === 0) return null
    let worst = 0
    for (const name of ph.affects) {
      const spec = specs.find((s) => s.name === name)!
      const got = partners.get(name)!.arrivals
      for (const [id, e] of accepted) {
        if (e.at > ph.faultEnd || !spec.entitled(e)) continue
        const ack = got.get(id)?.ack ?? 0
        if (ack === 0) return null
        worst = Math.max(worst, ack - ph.faultEnd)
      }
    }
    return worst
  }
  const baseline = phases.find((p) => p.name === 'baseline')
  const baseLat = baseline ? latencies(baseline.start, baseline.end) : []
  const baselineP99 = baseLat.length > 0 ? percentile(baseLat, 0.99) : null
  const phaseFigures: PhaseFigures[] = phases.map((ph) => {
    const isFault = ph.faultStart !== undefined && ph.faultEnd !== undefined
    const lat = isFault ? latencies(ph.faultStart!, ph.faultEnd!) : latencies(ph.start, ph.end)
    const p99 = lat.length > 0 ? percentile(lat, 0.99) : null
    return {
      name: ph.name,
      what: ph.what,
      faultMs: isFault ? ph.faultEnd! - ph.faultStart! : null,
      recoveryMs: recovery(ph),
      samples: lat.length,
      p50Ms: lat.length > 0 ? percentile(lat, 0.5) : null,
      p99Ms: p99,
      p99Ratio: p99 !== null && baselineP99 ? p99 / baselineP99 : null,
      notes: ph.notes,
    }
  })

  const total = (f: (p: PartnerFigures) => number) => partnerFigures.reduce((n, p) => n + f(p), 0)
  const count = (kind: string) => problems.filter((p) => p.kind === kind).length
  const checks: Check[] = [
    {
      name: 'every entitled accepted event delivered at least once',
      passed: lost.length === 0,
      detail:
        lost.length === 0
          ? `${total((p) => p.delivered)} deliveries of ${total((p) => p.entitled)} entitled`
          : `${lost.length} entitled deliveries missing (findings.lost)`,
    },
    {
      name: 'nothing outside a grant (publisher, row filter, projection)',
      passed: count('outside-grant') === 0,
      detail: `${count('outside-grant')} deliveries outside a grant`,
    },
    {
      name: 'every signature verifies',
      passed: count('signature') === 0,
      detail: `${count('signature')} requests failed verification`,
    },
    {
      name: 'duplicates only with the same webhook-id and body',
      passed: count('same-id-other-body') === 0,
      detail:
        `${total((p) => p.duplicates)} duplicates; ${count('same-id-other-body')} ` +
        `with another body under the same webhook-id`,
    },
    {
      name: 'per-key order at every partner',
      passed: orderViolations.length === 0,
      detail: `${orderViolations.length} keys out of order`,
    },
    {
      name: 'no platform process exited by itself',
      passed: input.unexpectedExits.length === 0,
      detail:
        input.unexpectedExits.map((x) => `${x.name} (pid ${x.pid}) exited with ${x.signal ?? x.code}`).join('; ') ||
        'none',
    },
  ]
  return {
    passed: checks.every((c) => c.passed),
    mode: input.mode,
    runId: input.runId,
    runDir: input.runDir,
    options: input.options,
    checks,
    figures: {
      requests: input.publishers.reduce((n, p) => n + p.requests, 0),
      accepted: accepted.size,
      publishers: input.publishers,
      partners: partnerFigures,
      lost: lost.length,
      duplicates: total((p) => p.duplicates),
      orderViolations: orderViolations.length,
      baselineP99Ms: baselineP99,
      phases: phaseFigures,
      drainMs: input.drainMs,
    },
    findings: {
      lost: lost.slice(0, LIST_MAX),
      orderViolations: orderViolations.slice(0, LIST_MAX),
      problems: problems.slice(0, LIST_MAX),
      unexpectedExits: input.unexpectedExits,
    },
    phases,
    platformLogs: input.platformLogs,
  }
}

const ms = (v: number | null) => (v === null ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)

/** The summary: checks, then the figures as tables. */
export function formatReport(r: ChaosReport): string {
  const f = r.figures
  const lines: string[] = []
  lines.push(`chaos ${r.mode} run ${r.runId}: ${r.passed ? 'PASSED' : 'FAILED'}`, '')
  for (const c of r.checks) lines.push(`  ${c.passed ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`)
  lines.push('')
  for (const p of f.publishers) {
    const statuses = Object.entries(p.statuses)
      .map(([s, n]) => `${s === '-1' ? 'no answer' : s} x${n}`)
      .join(', ')
    lines.push(
      `  publisher ${p.name}: ${p.accepted} events accepted in ${p.requests} ` +
        `requests (${statuses}); longest time between two 202s ${ms(p.longestGapMs)}`,
    )
  }
  lines.push(
    `  events accepted: ${f.accepted}; lost: ${f.lost} (goal 0); duplicates: ` +
      `${f.duplicates}; order violations: ${f.orderViolations} (goal 0); drain ` +
      `${ms(f.drainMs)}`,
    '',
  )
  lines.push(
    `  ${'partner'.padEnd(12)} ${'entitled'.padStart(9)} ` +
      `${'delivered'.padStart(9)} ${'lost'.padStart(6)} ${'dups'.padStart(6)} ` +
      `${'unacc.'.padStart(6)} ${'order'.padStart(5)} ${'end/s'.padStart(6)}  ` +
      `grant`,
  )
  for (const p of f.partners)
    lines.push(
      `  ${p.name.padEnd(12)} ${String(p.entitled).padStart(9)} ` +
        `${String(p.delivered).padStart(9)} ${String(p.lost).padStart(6)} ` +
        `${String(p.duplicates).padStart(6)} ${String(p.unaccepted).padStart(6)} ` +
        `${String(p.orderViolations).padStart(5)} ` +
        `${p.endRatePerSec.toFixed(1).padStart(6)}  ${p.what}`,
    )
  if (f.lost > 0)
    lines.push(
      '  (lost: not delivered when the run ended; end/s: first deliveries per ' +
        'second in its last 30 s, above 0: still arriving, late rather than lost)',
    )
  lines.push('')
  lines.push(
    `  ${'phase'.padEnd(20)} ${'fault'.padStart(8)} ${'recovery'.padStart(9)} ` +
      `${'samples'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ` +
      `${'p99/base'.padStart(9)}  (healthy partners' latency, 202 to arrival; goal ` +
      `≤ 1.5x)`,
  )
  for (const p of f.phases) {
    const ratio = p.p99Ratio === null ? '-' : `${p.p99Ratio.toFixed(2)}x${p.p99Ratio > 1.5 ? ' !' : ''}`
    lines.push(
      `  ${p.name.padEnd(20)} ${ms(p.faultMs).padStart(8)} ` +
        `${(p.faultMs === null ? '-' : p.recoveryMs === null ? 'never' : ms(p.recoveryMs)).padStart(9)} ` +
        `${String(p.samples).padStart(8)} ${ms(p.p50Ms).padStart(8)} ` +
        `${ms(p.p99Ms).padStart(8)} ${ratio.padStart(9)}`,
    )
  }
  if (r.findings.lost.length > 0) {
    lines.push('', `  lost (first ${r.findings.lost.length}):`)
    for (const l of r.findings.lost.slice(0, 10))
      lines.push(
        `    ${l.partner} ${l.id} ${l.key} seq ${l.seq} accepted ${l.acceptedAt} in ` +
          `${l.phase}; unacknowledged arrivals ${l.unacknowledgedArrivals}`,
      )
  }
  for (const v of r.findings.orderViolations.slice(0, 10))
    lines.push(
      `  order: ${v.partner} ${v.key}: first arrivals ... ${v.seqs.join(', ')} ... (step back at arrival ${v.at})`,
    )
  for (const p of r.findings.problems.slice(0, 10)) lines.push(`  ${p.kind}: ${p.partner} ${p.id}: ${p.detail}`)
  lines.push('', `  report: ${r.runDir}/report.json; platform logs: ${r.runDir}/logs/`)
  return lines.join('\n')
}
