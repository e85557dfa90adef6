export {
  ControlPlane,
  DEFAULT_DELIVERY_POLICY,
  MAX_OUTBOX_ENTRIES,
  ownDeliveryPolicy,
  type ControlPlaneOptions,
  type OrganizationInput,
  type SubscriptionInput,
  type SubscriptionPatch,
  type SubscriptionCreated,
} from './service.ts'
export {
  partnerProfileValue,
  partnerProfileEntry,
  PARTNER_PROFILE_TOPIC,
  PARTNER_PROFILE_CHANGED,
  PLATFORM_PROFILE_FIELDS,
  UNKNOWN_COUNTRY,
} from './partner-profile.ts'
export { ApiKeys, BOOTSTRAP_KEY_ID, type CreatedKey, type CreateKeyInput, type ApiKeyOptions } from './api-keys.ts'
export { DeliveryLog, MAX_ATTEMPTS_KEPT, type AttemptRecord, type DeliverySearch } from './deliveries.ts'
export {
  checkWithinGrants,
  checkEntitlements,
  excessOver,
  fieldAllowed,
  type EntitlementRequest,
} from './entitlements.ts'
export {
  pinnedReaderCheck,
  pinnedReaderConflicts,
  unreadableFields,
  describeConflicts,
  type PinnedReaderPolicy,
  type PinnedReaderConflict,
} from './pinned-readers.ts'
export { encodePins, pinsOf } from './schema-pins.ts'
export {
  NotFoundError,
  ForbiddenError,
  ConflictError,
  RequestInvalidError,
  isDuplicateKey,
  type FieldError,
} from './errors.ts'
export {
  collections,
  ensureIndexes,
  newId,
  page,
  encodeCursor,
  decodeCursor,
  INDEXES,
  QUERY_SHAPES,
  COLLECTION_NAMES,
  type Collections,
  type Page,
  type PageRequest,
  type QueryShape,
} from './store.ts'
export type * from './types.ts'
export { controlPlaneFromConfig } from './from-config.ts'
export {
  SourceRegistry,
  checkSourceConfig,
  loadSourceDeclarations,
  type SourceInput,
  type SourcePatch,
  type SourceDeclaration,
  type SourceWithStatus,
  type SourceRegistryOptions,
} from './sources.ts'
export { registryAccess, type RegistryAccessOptions } from './registry-access.ts'
