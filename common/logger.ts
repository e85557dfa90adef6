/**
 * Structured JSON logs, one object a line. Keys that can carry secrets are redacted wherever they
 * appear in the context, so a password or a connection string never reaches a log line. A line
 * written while a trace span is active carries its `trace_id` and `span_id` (OpenTelemetry's names
 * for trace context in logs; docs/tracing.md): only with tracing on, when spans are active at all.
 */
import { context, trace } from '@opentelemetry/api'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }
const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|credential|^uri$|connectionstring|sasl/i

export interface Logger {
  debug(msg: string, ctx?: Record<string, unknown>): void
  info(msg: string, ctx?: Record<string, unknown>): void
  warn(msg: string, ctx?: Record<string, unknown>): void
  error(msg: string, ctx?: Record<string, unknown>): void
  child(bindings: Record<string, unknown>): Logger
}

export interface LoggerOptions {
  level?: LogLevel
  bindings?: Record<string, unknown>
  write?: (line: string) => void
}

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value
  if (value instanceof Error) return serializeError(value)
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && v !== undefined && v !== '' ? '[redacted]' : redact(v, depth + 1)
  }
  return out
}

function serializeError(err: Error): Record<string, unknown> {
  const e = err as Error & { code?: unknown; context?: unknown; retriable?: unknown }
  const out: Record<string, unknown> = { name: e.name, message: e.message }
  if (e.code !== undefined) out.code = e.code
  if (e.retriable !== undefined) out.retriable = e.retriable
  if (e.context !== undefined) out.context = redact(e.context)
  if (e.cause instanceof Error) out.cause = serializeError(e.cause)
  return out
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = ORDER[options.level ?? 'info']
  const bindings = options.bindings ?? {}
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'))
  const emit = (level: LogLevel, msg: string, ctx?: Record<string, unknown>) => {
    if (ORDER[level] < threshold) return
    // without a context manager (tracing off) the active context is always the empty root
    const span = trace.getSpanContext(context.active())
    const ids = span !== undefined ? { trace_id: span.traceId, span_id: span.spanId } : undefined
    const record = { time: new Date().toISOString(), level, msg, ...ids, ...bindings, ...(redact(ctx ?? {}) as object) }
    write(JSON.stringify(record))
  }
  return {
    debug: (m, c) => emit('debug', m, c),
    info: (m, c) => emit('info', m, c),
    warn: (m, c) => emit('warn', m, c),
    error: (m, c) => emit('error', m, c),
    child: (more) => createLogger({ ...options, bindings: { ...bindings, ...more } }),
  }
}
