/**
 * What a control-plane operation refuses, in terms the API maps to HTTP (404, 403, 409, 422)
 * without the control plane knowing about HTTP.
 */
import { SyndicationError, type ErrorContext } from '../common/errors.ts'
import { isDuplicateKey } from '../common/store-errors.ts'

export interface FieldError {
  field: string
  message: string
  /** Character offset of the error within the field's value (e.g. a JSONata body mapping). */
  position?: number
}

/** Not there, or not visible to the caller: both look the same from outside (404). */
export class NotFoundError extends SyndicationError {
  constructor(
    readonly what: string,
    context: ErrorContext = {},
  ) {
    super('NOT_FOUND', `${what} not found`, false, context)
  }
}

/** Visible but the caller's scope may not do this (403). */
export class ForbiddenError extends SyndicationError {
  constructor(message: string, context: ErrorContext = {}) {
    super('FORBIDDEN', message, false, context)
  }
}

/** Would duplicate something unique, or clashes with the current state (409). */
export class ConflictError extends SyndicationError {
  constructor(
    message: string,
    readonly field?: string,
    context: ErrorContext = {},
  ) {
    super('CONFLICT', message, false, context)
  }
}

/** Well-formed but not acceptable: exceeds a grant, a refused URL, an unknown reference (422). */
export class RequestInvalidError extends SyndicationError {
  constructor(
    readonly errors: FieldError[],
    context: ErrorContext = {},
  ) {
    super('REQUEST_INVALID', errors.map((e) => `${e.field}: ${e.message}`).join('; '), false, context)
  }
}

export { isDuplicateKey }

/** Awaits a write (its result): a unique index refusing it (a duplicate key) is a ConflictError naming `field`. */
export async function uniqueWrite<T>(write: Promise<T>, field: string, message: string): Promise<T> {
  try {
    return await write
  } catch (err) {
    if (isDuplicateKey(err)) throw new ConflictError(message, field)
    throw err
  }
}
