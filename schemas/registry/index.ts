export { startSchemaRegistry } from './server.ts'
export type { RegistryServer, RegistryServerOptions } from './server.ts'
export { createRegistryApp, CONTENT_TYPE } from './app.ts'
export { SchemaRegistryService, parseVersion, SCHEMA_TYPES } from './registry.ts'
export type { SchemaLog, SchemaBody, SubjectVersion, BeforeRegisterHook, RegisterCandidate } from './registry.ts'
export { KafkaSchemaStore } from './store.ts'
export { MemorySchemaLog } from './memory-log.ts'
export type { StoreOptions } from './store.ts'
export { RegistryState, schemaKey, configKey, deleteSubjectKey, schemaValue } from './state.ts'
export type { SchemaKey, SchemaValue, StoredSchema, VersionEntry } from './state.ts'
export { RegistryError, errors as registryErrors } from './errors.ts'
export {
  COMPATIBILITY_LEVELS,
  DEFAULT_COMPATIBILITY,
  MAX_SCHEMA_BYTES,
  identityOf,
  parseAvro,
  parseLevel,
  readFailure,
} from './avro.ts'
export type { CompatibilityLevel, Reference, SchemaSource, ReferenceLookup } from './avro.ts'
export { compatibilityErrorsOf, parseSchema, parseSchemaType, readErrors } from './schema-types.ts'
export type { ParsedSchema, SchemaType, VersionedSchema } from './schema-types.ts'
export { INTERNAL_USER, internalPassword, adminPrincipal, credentialsOf } from './auth.ts'
export type { RegistryAuth, RegistryPrincipal } from './auth.ts'
