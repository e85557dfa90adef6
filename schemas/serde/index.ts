export { AvroSerde, MAGIC_BYTE, HEADER_SIZE } from './serde.ts'
export { RegistryClient } from './client.ts'
export type { RegistryClientOptions, RegisteredSchema } from './client.ts'
export { decimalToBytes, bytesToDecimal } from './decimal.ts'
