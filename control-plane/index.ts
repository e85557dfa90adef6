export { ControlPlane, DEFAULT_DELIVERY_POLICY, MAX_OUTBOX_ENTRIES, ownDeliveryPolicy } from './service.ts'
export {
  partnerProfileValue,
  partnerProfileEntry,
  PARTNER_PROFILE_TOPIC,
  PARTNER_PROFILE_CHANGED,
  PLATFORM_PROFILE_FIELDS,
  UNKNOWN_COUNTRY,
} from './partner-profile.ts'
export type {
  ControlPlaneOptions,
  OrganizationInput,
  SubscriptionInput,
  SubscriptionPatch,
  SubscriptionCreated,
} from './service.ts'
export { ApiKeys, BOOTSTRAP_KEY_ID } from './api-keys.ts'
export type { CreatedKey, CreateKeyInput, ApiKeyOptions } from './api-keys.ts'
export { DeliveryLog, MAX_ATTEMPTS_KEPT } from './deliveries.ts'
export type { AttemptRecord, DeliverySearch } from './deliveries.ts'
export { checkWithinGrants, checkEntitlements, excessOver, fieldAllowed } from './entitlements.ts'
export type { EntitlementRequest } from './entitlements.ts'
export { pinnedReaderCheck, pinnedReaderConflicts, unreadableFields, describeConflicts } from './pinned-readers.ts'
export type { PinnedReaderPolicy, PinnedReaderConflict } from './pinned-readers.ts'
export { encodePins, pinsOf } from './schema-pins.ts'
export { NotFoundError, ForbiddenError, ConflictError, RequestInvalidError, isDuplicateKey } from './errors.ts'
export type { FieldError } from './errors.ts'
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
} from './store.ts'
export type { Collections, Page, PageRequest, QueryShape } from './store.ts'
export type * from './types.ts'
export { controlPlaneFromConfig } from './from-config.ts'
export { SourceRegistry, checkSourceConfig, loadSourceDeclarations } from './sources.ts'
export type { SourceInput, SourcePatch, SourceDeclaration, SourceWithStatus, SourceRegistryOptions } from './sources.ts'
export { registryAccess } from './registry-access.ts'
export type { RegistryAccessOptions } from './registry-access.ts'
