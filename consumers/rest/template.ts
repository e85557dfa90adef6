/**
 * URL templates of REST sinks: `https://crm.example/api/stock/{value.sku}`. A placeholder names a
 * field of the event envelope (`{key}`, `{eventId}`, `{eventType}`, `{topic}`) or a path into its
 * value (`{value.sku}`, `{value.site.id}`); every substituted value is URL-encoded
 * (encodeURIComponent), so an event can never change the host, add path segments or a query.
 * Placeholders are only allowed after the host: the URL guard checked the host when the
 * subscription was saved, and checks it again at delivery time.
 */
import { DataError } from '../../common/errors.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import { httpUrlProblem } from '../http/url.ts'

const PLACEHOLDER = /\{([^{}]*)\}/g
const NAME = /^(key|eventId|eventType|topic|value(\.[A-Za-z_$][A-Za-z0-9_$-]*)+)$/

export interface UrlTemplate {
  /** The template as configured. */
  source: string
  /** Literal parts and placeholders (as paths), alternating: literal, path, literal, ..., literal. */
  literals: string[]
  paths: string[][]
}

/** Why a URL template is unusable, or null. */
export function urlTemplateProblem(source: string): string | null {
  const names: string[] = []
  const stripped = source.replace(PLACEHOLDER, (_m, name: string) => {
    names.push(name)
    return 'x'
  })
  if (/[{}]/.test(stripped))
    return 'has an unbalanced { or }; placeholders are {key}, {eventId}, {eventType}, {topic} or {value.<field path>}'
  const bad = names.find((n) => !NAME.test(n))
  if (bad !== undefined)
    return `has an unknown placeholder {${bad}}: use {key}, {eventId}, {eventType}, {topic} or {value.<field path>}`
  const problem = httpUrlProblem(stripped, 'use auth')
  if (problem) return problem
  if (names.length > 0) {
    const first = source.indexOf('{')
    const authorityEnd = source.indexOf('/', source.indexOf('//') + 2)
    if (authorityEnd < 0 || first < authorityEnd)
      return 'may hold placeholders only after the host (in the path or the query)'
  }
  return null
}

/** Parses a template that `urlTemplateProblem` accepted. */
export function parseUrlTemplate(source: string): UrlTemplate {
  const literals: string[] = []
  const paths: string[][] = []
  let last = 0
  for (const m of source.matchAll(PLACEHOLDER)) {
    literals.push(source.slice(last, m.index))
    paths.push(m[1]!.split('.'))
    last = m.index + m[0].length
  }
  literals.push(source.slice(last))
  return { source, literals, paths }
}

function lookup(record: SinkRecord, path: string[]): unknown {
  const [head, ...rest] = path
  let v: unknown = head === 'value' ? record.value : record[head as 'key' | 'eventId' | 'eventType' | 'topic']
  for (const k of rest) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined
  return v
}

/** The URL for one event; a placeholder without a scalar, non-empty value is a DataError (dead letter). */
export function renderUrl(t: UrlTemplate, record: SinkRecord): string {
  if (t.paths.length === 0) return t.source
  let out = t.literals[0]!
  for (let i = 0; i < t.paths.length; i++) {
    const v = lookup(record, t.paths[i]!)
    if (
      (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'bigint') ||
      v === ''
    ) {
      throw new DataError(
        `URL placeholder {${t.paths[i]!.join('.')}} has no value in event ` +
          `${record.eventId} (${v === undefined || v === null ? 'missing' : v === '' ? 'empty' : 'not a scalar'})`,
        {
          placeholder: t.paths[i]!.join('.'),
          eventId: record.eventId,
        },
      )
    }
    out += encodeURIComponent(String(v)) + t.literals[i + 1]!
  }
  return out
}
