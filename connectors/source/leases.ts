/**
 * Which worker runs which source: the lease protocol of connectors/leases.ts in `source_leases`, a
 * collection of its own so that the sink workers' fair-share counts never see source leases.
 */
import type { Db } from 'mongodb'
import { Leases, type LeaseDoc } from '../leases.ts'

export type SourceLeaseDoc = LeaseDoc

export const SOURCE_LEASES = 'source_leases'

export class SourceLeases extends Leases {
  constructor(db: Db) {
    super(db.collection(SOURCE_LEASES))
  }
}
