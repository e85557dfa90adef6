/**
 * One error family for the whole platform (after platformatic/kafka): a closed set of codes, a
 * `retriable` flag that `isRetriable` alone decides on, and context that is always logged.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'STACK_TOOL_MISSING'
  | 'STACK_PROVISION_FAILED'
  | 'STACK_PORT_IN_USE'
  | 'STACK_NOT_READY'
  | 'DATA_INVALID'
  | 'PARTNER_REJECTED'
  | 'RETRIABLE'
  | 'URL_REFUSED'
  | 'SECRET_UNREADABLE'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'REQUEST_INVALID'
  | 'SINK_ENDPOINT_DISABLED'
  | 'RATE_LIMITED'

export type ErrorContext = Record<string, unknown>

export class SyndicationError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retriable: boolean,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = new.target.name
  }
}

/** The errors of one code that are never retried and carry nothing but a message, context and cause. */
function errorClass(code: ErrorCode) {
  return class extends SyndicationError {
    constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
      super(code, message, false, context, options)
    }
  }
}

/** A setting is missing, malformed or unknown: the process must not start. */
export class ConfigError extends errorClass('CONFIG_INVALID') {
  /** Every problem of a configuration, each naming its field: `subject: field message; ...`, the fields in context. */
  static ofFields(subject: string, fields: FieldProblem[], context: ErrorContext = {}): ConfigError {
    return new ConfigError(`${subject}: ${fields.map((p) => `${p.field} ${p.message}`).join('; ')}`, {
      ...context,
      fields,
    })
  }
}

/** A problem with one setting of a configuration, naming its field (for RFC 9457 answers). */
export interface FieldProblem {
  field: string
  message: string
}

/** The local stack could not be provisioned or started; the message says what to do. */
export class StackError extends SyndicationError {
  constructor(
    code: Extract<ErrorCode, `STACK_${string}`>,
    message: string,
    context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, false, context, options)
  }
}

/** Bad payload: never retried, goes to the dead-letter path. */
export class DataError extends errorClass('DATA_INVALID') {}

/** A transient failure (network, 5xx, 429, timeout); `retryAfterMs` when the peer said so. */
export class RetriableError extends SyndicationError {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super('RETRIABLE', message, true, context, options)
  }
}

/** The partner's system refused the record (4xx other than 408/429). */
export class PartnerRejectedError extends SyndicationError {
  constructor(
    message: string,
    readonly status: number,
    context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super('PARTNER_REJECTED', message, false, context, options)
  }
}

/** An outbound URL the SSRF guard refuses (scheme, or a host resolving to a non-public address). */
export class UrlRefusedError extends errorClass('URL_REFUSED') {}

/** A secret at rest cannot be decrypted: its key is not in the key ring, or it was tampered with. */
export class SecretUnreadableError extends errorClass('SECRET_UNREADABLE') {}

/**
 * A request refused before any expensive work: the caller exceeded a rate limit (`policy` names it:
 * HTTP 429), or a bounded resource is busy (`policy` null: HTTP 503). Either way it may try again
 * after `retryAfterMs`.
 */
export class RateLimitedError extends SyndicationError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
    readonly policy: { name: string; perSecond: number; burst: number } | null,
    context: ErrorContext = {},
  ) {
    super('RATE_LIMITED', message, true, context)
  }
}

/** Why a sink endpoint must stop receiving until an operator re-enables it. */
/** auth-failed: the partner's system refuses our credentials (e.g. a MongoDB password changed). */
export type EndpointDisabledReason = 'gone' | 'url-refused' | 'failing' | 'auth-failed'

/**
 * The endpoint itself is unusable (HTTP 410 Gone, a URL the guard refuses, failing for longer than
 * the subscription allows): the runtime disables the subscription and holds its records (they are
 * neither retried nor dead-lettered), so re-enabling it resumes where it stopped.
 */
export class EndpointDisabledError extends SyndicationError {
  constructor(
    readonly reason: EndpointDisabledReason,
    message: string,
    context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super('SINK_ENDPOINT_DISABLED', message, false, context, options)
  }
}

/** The one place that decides whether an error is worth another try. Programming errors never are. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof SyndicationError) return err.retriable
  return false
}
