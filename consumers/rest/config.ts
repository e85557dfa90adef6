/**
 * The REST sink's configuration (as the worker hands it over, secrets opened) and its validation:
 * every problem names its field relative to the sink (the control plane prefixes `sink.`), so a
 * subscription with a broken URL template, auth or body mapping is refused when it is saved (422).
 */
import type { FieldError } from '../../control-plane/errors.ts'
import { headerProblems, isHeaderName } from '../http/headers.ts'
import { httpUrlProblem } from '../http/url.ts'
import { mappingProblem } from './mapping.ts'
import type { OAuth2Credentials } from './oauth2.ts'
import { urlTemplateProblem } from './template.ts'

export type RestAuth =
  | { type: 'none' }
  | { type: 'bearer'; token: string }
  | { type: 'basic'; username: string; password: string }
  | { type: 'header'; headerName: string; headerValue: string }
  | ({ type: 'oauth2' } & OAuth2Credentials)

export type RestMethod = 'POST' | 'PUT' | 'PATCH'

export interface RestSinkConfig {
  /** URL template: placeholders from the event (`{key}`, `{value.sku}`...), each URL-encoded. */
  url: string
  method: RestMethod
  auth?: RestAuth
  /** JSONata expression over the event envelope; absent: the event value is the body. */
  bodyMapping?: string
  /** Extra request headers (not the ones the sink sets itself). */
  headers?: Record<string, string>
  /** Time allowed for the answer headers, and between answer body chunks, in ms. */
  timeoutMs?: number
  /** Batching: up to `maxEvents` events per request (a JSON array body), waiting at most `maxWaitMs` for them. */
  batch?: { maxEvents: number; maxWaitMs: number }
}

export const REST_METHODS: readonly RestMethod[] = ['POST', 'PUT', 'PATCH']
export const DEFAULT_BATCH_WAIT_MS = 50
export const MAX_BATCH_WAIT_MS = 10_000
/** Settings of a REST sink that are secrets: sealed at rest, never returned. */
export const REST_SECRET_PATHS = ['auth.token', 'auth.password', 'auth.clientSecret', 'auth.headerValue'] as const

export const MAX_BATCH_EVENTS = 1000
/** Headers the sink sets itself (or the HTTP layer owns): a subscription cannot override them. */
export const RESERVED_HEADERS = new Set([
  'idempotency-key',
  'authorization',
  'content-type',
  'content-length',
  'host',
  'transfer-encoding',
  'connection',
  'user-agent',
])

const str = (v: unknown): v is string => typeof v === 'string' && v !== ''

/** Every problem with a REST sink configuration (fields relative to the sink). Secrets need only be present. */
export function restSinkProblems(config: unknown): Array<FieldError & { position?: number }> {
  const out: Array<FieldError & { position?: number }> = []
  if (config === null || typeof config !== 'object') return [{ field: 'sink', message: 'must be an object' }]
  const c = config as Record<string, unknown>
  if (typeof c.url !== 'string')
    out.push({ field: 'url', message: 'is required (an http:// or https:// URL, placeholders allowed after the host)' })
  else {
    const p = urlTemplateProblem(c.url)
    if (p) out.push({ field: 'url', message: p })
  }
  if (!REST_METHODS.includes(c.method as RestMethod))
    out.push({ field: 'method', message: `must be one of ${REST_METHODS.join(', ')}` })
  if (c.bodyMapping !== undefined) {
    if (typeof c.bodyMapping !== 'string')
      out.push({ field: 'bodyMapping', message: 'must be a JSONata expression (a string)' })
    else {
      const p = mappingProblem(c.bodyMapping)
      if (p)
        out.push({
          field: 'bodyMapping',
          message: p.message,
          ...(p.position !== undefined ? { position: p.position } : {}),
        })
    }
  }
  out.push(...headerProblems(c.headers, RESERVED_HEADERS))
  if (
    c.batchWaitMs !== undefined &&
    (typeof c.batchWaitMs !== 'number' ||
      !Number.isInteger(c.batchWaitMs) ||
      c.batchWaitMs < 0 ||
      c.batchWaitMs > MAX_BATCH_WAIT_MS)
  ) {
    out.push({ field: 'batchWaitMs', message: `must be an integer from 0 to ${MAX_BATCH_WAIT_MS}` })
  }
  if (c.auth !== undefined) out.push(...authProblems(c.auth))
  return out
}

function authProblems(auth: unknown): FieldError[] {
  if (auth === null || typeof auth !== 'object') return [{ field: 'auth', message: 'must be an object with a type' }]
  const a = auth as Record<string, unknown>
  const need = (...fields: string[]) =>
    fields
      .filter((f) => !str(a[f]))
      .map((f) => ({ field: `auth.${f}`, message: `is required with auth type ${String(a.type)}` }))
  switch (a.type) {
    case 'none':
      return []
    case 'bearer':
      return need('token')
    case 'basic': {
      const out = need('username', 'password')
      if (str(a.username) && a.username.includes(':'))
        out.push({ field: 'auth.username', message: 'must not contain ":" (HTTP Basic)' })
      return out
    }
    case 'header': {
      const out = need('headerName', 'headerValue')
      if (str(a.headerName) && !isHeaderName(a.headerName))
        out.push({ field: 'auth.headerName', message: 'is not a valid header name' })
      else if (
        str(a.headerName) &&
        RESERVED_HEADERS.has(a.headerName.toLowerCase()) &&
        a.headerName.toLowerCase() !== 'authorization'
      ) {
        out.push({ field: 'auth.headerName', message: 'is set by the platform; choose another header' })
      }
      return out
    }
    case 'oauth2': {
      const out = need('tokenUrl', 'clientId', 'clientSecret')
      const problem = str(a.tokenUrl) ? httpUrlProblem(a.tokenUrl, 'use clientId and clientSecret') : null
      if (problem) out.push({ field: 'auth.tokenUrl', message: problem })
      for (const f of ['scope', 'audience'])
        if (a[f] !== undefined && typeof a[f] !== 'string')
          out.push({ field: `auth.${f}`, message: 'must be a string' })
      if (a.clientAuth !== undefined && a.clientAuth !== 'basic' && a.clientAuth !== 'body')
        out.push({ field: 'auth.clientAuth', message: 'must be basic or body' })
      return out
    }
    default:
      return [{ field: 'auth.type', message: 'must be one of none, bearer, basic, header, oauth2' }]
  }
}
