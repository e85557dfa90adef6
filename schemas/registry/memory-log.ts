/**
 * A SchemaLog kept in memory: the registry without Kafka, for benchmarks and unit tests. Not for
 * production (nothing survives the process, and no second instance can share it).
 */
import { RegistryState } from './state.ts'
import type { SchemaLog } from './registry.ts'

export class MemorySchemaLog implements SchemaLog {
  readonly state = new RegistryState()
  readonly records: Array<[string, string | null]> = []

  async append(key: string, value: string | null): Promise<number> {
    this.records.push([key, value])
    this.state.apply(key, value)
    return this.records.length - 1
  }
}
