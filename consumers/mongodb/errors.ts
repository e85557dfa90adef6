/**
 * What a MongoDB driver error means for delivery (the error classes of common/errors.ts):
 *  - the server cannot be reached or answered too late (network, server selection, pool cleared,
 *    timeouts, a stepping-down primary, the error labels RetryableWriteError / ResetPool /
 *    SystemOverloadedError): RetriableError;
 *  - our credentials are refused (AuthenticationFailed, Unauthorized, an unsupported mechanism):
 *    ConfigError when the sink starts (the subscription reports it), EndpointDisabledError
 *    ('auth-failed') on a write (records are held, not dead-lettered, until the partner fixes it);
 *  - the server refuses the document (too large, invalid field names, a unique index of the
 *    partner's, a validator): DataError (dead letter: retrying cannot help);
 *  - the driver refuses the document before sending it (BSON too large or unserialisable): DataError.
 * Messages never carry the connection string or its password (they are scrubbed).
 */
import {
  MongoError,
  MongoNetworkError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb'
import { ConfigError, DataError, EndpointDisabledError, RetriableError, SyndicationError } from '../../common/errors.ts'
import { scrub } from './connection.ts'

/**
 * Server codes that say "try again later" (from the server's error_codes.yml, the retryable-writes spec and network
 * errors).
 */
const RETRIABLE_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  24, // LockTimeout
  46, // LockBusy
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  117, // ConflictingOperationInProgress
  134, // ReadConcernMajorityNotAvailableYet
  189, // PrimarySteppedDown
  202, // NetworkInterfaceExceededTimeLimit
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  16500, // Atlas: rate limited
])

/** Credentials or permissions refused. */
const AUTH_CODES = new Set([
  11, // UserNotFound
  13, // Unauthorized
  18, // AuthenticationFailed
  334, // MechanismUnavailable
  8000, // AtlasError (bad credentials on Atlas)
])

const RETRIABLE_LABELS = [
  'RetryableWriteError',
  'ResetPool',
  'SystemOverloadedError',
  'TransientTransactionError',
  'NoWritesPerformed',
]

export { isDuplicateKey as isDuplicateKeyError } from '../../common/store-errors.ts'

export function isAuthError(err: unknown): boolean {
  if (!(err instanceof MongoError)) return false
  if (typeof err.code === 'number' && AUTH_CODES.has(err.code)) return true
  return /authentication (failed|mechanism)|unsupported authentication|not authorized/i.test(err.message)
}

export type MongoPhase = 'connect' | 'write'

/** The classified error of a failed connect or write; `secrets` are scrubbed from every message. */
export function classifyMongoError(
  err: unknown,
  phase: MongoPhase,
  context: Record<string, unknown>,
  secrets: readonly string[] = [],
): SyndicationError {
  if (err instanceof SyndicationError) return err
  const raw = err instanceof Error ? err.message : String(err)
  const message = scrub(raw, secrets)
  const name = err instanceof Error ? err.name : 'Error'
  const code = (err as { code?: unknown })?.code
  const ctx = { ...context, driverError: name, ...(code !== undefined ? { driverCode: code } : {}) }
  if (isAuthError(err)) {
    const text = `the partner's MongoDB server refused our credentials: ${message}`
    return phase === 'connect'
      ? new ConfigError(text, { ...ctx, field: 'sink.connectionString' })
      : new EndpointDisabledError('auth-failed', text, ctx)
  }
  if (err instanceof MongoError) {
    const labelled = RETRIABLE_LABELS.some((l) => err.hasErrorLabel(l))
    if (
      labelled ||
      err instanceof MongoNetworkError ||
      err instanceof MongoServerSelectionError ||
      err instanceof MongoTopologyClosedError ||
      err instanceof MongoOperationTimeoutError ||
      ['MongoPoolClearedError', 'MongoWaitQueueTimeoutError', 'MongoNetworkTimeoutError'].includes(err.name) ||
      (typeof err.code === 'number' && RETRIABLE_CODES.has(err.code))
    ) {
      return new RetriableError(
        `partner MongoDB unavailable (${name}${typeof code === 'number' ? ` ${code}` : ''}): ${message}`,
        undefined,
        ctx,
      )
    }
    if (err instanceof MongoServerError)
      return new DataError(`the partner's MongoDB server refused the document (${code}): ${message}`, ctx)
    if (phase === 'connect')
      return new ConfigError(`cannot use the partner's MongoDB: ${message}`, { ...ctx, field: 'sink.connectionString' })
    return new DataError(`the MongoDB driver refused the document: ${message}`, ctx)
  }
  // Node's own network failures (ECONNREFUSED, ENOTFOUND of an SRV lookup, ...) that escape the driver's classes.
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code))
    return new RetriableError(`partner MongoDB unreachable (${code}): ${message}`, undefined, ctx)
  // RangeError from the BSON serialiser (a document over the size limit), BSONError (a value BSON cannot hold).
  if (err instanceof RangeError || name === 'BSONError' || name === 'BSONVersionError') {
    return new DataError(
      `the document cannot be written to MongoDB (too large or not BSON-serialisable): ${message}`,
      ctx,
    )
  }
  if (phase === 'connect')
    return new ConfigError(`cannot use the partner's MongoDB: ${message}`, { ...ctx, field: 'sink.connectionString' })
  return new DataError(`MongoDB write failed: ${message}`, ctx)
}
