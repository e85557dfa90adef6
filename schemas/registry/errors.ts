/**
 * Errors of the Confluent Schema Registry REST API: an HTTP status and an `error_code`, answered as
 * `{"error_code": ..., "message": ...}`. Messages follow Confluent's wording so that clients that
 * match on them keep working.
 */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message)
    this.name = 'RegistryError'
  }
}

export const SUBJECT_NOT_FOUND = 40401
export const VERSION_NOT_FOUND = 40402
export const SCHEMA_NOT_FOUND = 40403
export const SUBJECT_SOFT_DELETED = 40404
export const SUBJECT_NOT_SOFT_DELETED = 40405
export const VERSION_SOFT_DELETED = 40406
export const VERSION_NOT_SOFT_DELETED = 40407
export const SUBJECT_COMPATIBILITY_NOT_CONFIGURED = 40408
export const SUBJECT_MODE_NOT_CONFIGURED = 40409
/** Confluent answered 409 with error_code 409 before 7.x; the latest releases use 40901. */
export const INCOMPATIBLE_SCHEMA = 40901
export const INVALID_SCHEMA = 42201
export const INVALID_VERSION = 42202
export const INVALID_COMPATIBILITY_LEVEL = 42203
export const INVALID_MODE = 42204
export const OPERATION_NOT_PERMITTED = 42205
export const REFERENCE_EXISTS = 42206
export const ID_DOES_NOT_MATCH = 42207
export const INVALID_SUBJECT = 42208
/** Confluent's basic-auth realm answers 401 with error_code 401; its RBAC plugin 403 with 40301. */
export const UNAUTHORIZED = 401
export const FORBIDDEN = 40301
export const STORE_ERROR = 50001
export const OPERATION_TIMEOUT = 50002

export const errors = {
  subjectNotFound: (s: string) => new RegistryError(404, SUBJECT_NOT_FOUND, `Subject '${s}' not found.`),
  versionNotFound: (v: number | string) => new RegistryError(404, VERSION_NOT_FOUND, `Version ${v} not found.`),
  schemaNotFound: (id?: number) =>
    new RegistryError(404, SCHEMA_NOT_FOUND, id === undefined ? 'Schema not found' : `Schema ${id} not found`),
  subjectSoftDeleted: (s: string) =>
    new RegistryError(
      404,
      SUBJECT_SOFT_DELETED,
      `Subject '${s}' was soft deleted.Set permanent=true to delete permanently`,
    ),
  subjectNotSoftDeleted: (s: string) =>
    new RegistryError(
      404,
      SUBJECT_NOT_SOFT_DELETED,
      `Subject '${s}' was not deleted first before being permanently deleted`,
    ),
  versionSoftDeleted: (s: string, v: number) =>
    new RegistryError(
      404,
      VERSION_SOFT_DELETED,
      `Subject '${s}' Version ${v} was soft deleted.Set permanent=true to delete permanently`,
    ),
  versionNotSoftDeleted: (s: string, v: number) =>
    new RegistryError(
      404,
      VERSION_NOT_SOFT_DELETED,
      `Subject '${s}' Version ${v} was not deleted first before being permanently deleted`,
    ),
  subjectCompatibilityNotConfigured: (s: string) =>
    new RegistryError(
      404,
      SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
      `Subject '${s}' does not have subject-level compatibility configured`,
    ),
  incompatible: (subject: string, messages: string[]) =>
    new RegistryError(
      409,
      INCOMPATIBLE_SCHEMA,
      `Schema being registered is incompatible with an earlier schema for subject ` +
        `"${subject}", details: [${messages.join(', ')}]`,
    ),
  subjectModeNotConfigured: (s: string | null) =>
    new RegistryError(
      404,
      SUBJECT_MODE_NOT_CONFIGURED,
      s === null ? 'Mode not configured' : `Subject '${s}' does not have subject-level mode configured`,
    ),
  invalidMode: (mode: unknown) =>
    new RegistryError(
      422,
      INVALID_MODE,
      `Invalid mode${typeof mode === 'string' ? ` '${mode}'` : ''}. Valid values ` +
        `are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT`,
    ),
  notPermitted: (detail: string) => new RegistryError(422, OPERATION_NOT_PERMITTED, detail),
  invalidSubject: (s: string) =>
    new RegistryError(
      422,
      INVALID_SUBJECT,
      `Invalid subject ${JSON.stringify(s)}: a subject name may not be empty or contain control characters`,
    ),
  unauthorized: (detail: string) => new RegistryError(401, UNAUTHORIZED, detail),
  forbidden: (detail: string) => new RegistryError(403, FORBIDDEN, detail),
  idDoesNotMatch: (existing: number, wanted: number) =>
    new RegistryError(
      422,
      ID_DOES_NOT_MATCH,
      `Schema already registered with id ${existing} instead of input id ${wanted}`,
    ),
  invalidParam: (name: string, value: string) =>
    new RegistryError(400, 400, `Query parameter ${name} must be an integer, not ${JSON.stringify(value)}`),
  invalidConfig: (detail: string) => new RegistryError(422, INVALID_SCHEMA, `Invalid config: ${detail}`),
  invalidSchema: (detail: string) => new RegistryError(422, INVALID_SCHEMA, `Invalid schema: ${detail}`),
  invalidVersion: (v: string) =>
    new RegistryError(
      422,
      INVALID_VERSION,
      `The specified version '${v}' is not a valid version id. Allowed values are ` +
        `between [1, 2^31-1] and the string "latest"`,
    ),
  invalidCompatibility: (level: unknown) =>
    new RegistryError(
      422,
      INVALID_COMPATIBILITY_LEVEL,
      `Invalid compatibility ` +
        `level${typeof level === 'string' ? ` '${level}'` : ''}. Valid values are ` +
        `none, backward, forward, full, backward_transitive, forward_transitive, and ` +
        `full_transitive`,
    ),
  referenceExists: (s: string, v: number, by: string) =>
    new RegistryError(
      422,
      REFERENCE_EXISTS,
      `One or more references exist to the schema {subject=${s},version=${v}}: referenced by ${by}`,
    ),
  store: (detail: string) => new RegistryError(500, STORE_ERROR, `Error in the backend data store: ${detail}`),
  timeout: (detail: string) => new RegistryError(500, OPERATION_TIMEOUT, `Operation timed out: ${detail}`),
}
