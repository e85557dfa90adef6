/**
 * Deal registration, lead sharing and CRM decisions (docs/deals.md), put together for the control
 * plane: one registry of deals and leads, the inbound connectors, the expiry job, and the listeners
 * the deals' outbox relay registers to be woken at once by a write in this process.
 */
import type { Logger } from '../../common/logger.ts'
import type { SecretBox } from '../../common/secret-box.ts'
import { MappingSandbox, type MappingSandboxSettings } from '../../consumers/rest/mapping-sandbox.ts'
import type { Collections } from '../store.ts'
import { DealExpiry } from './expiry.ts'
import { InboundConnectors } from './inbound.ts'
import { Leads } from './leads.ts'
import { Deals, type DealProgramDefaults } from './service.ts'

export { Deals, programOf } from './service.ts'
export type { DealInput, DealProgramDefaults, DealWithHistory } from './service.ts'
export { Leads } from './leads.ts'
export type { LeadInput, LeadAction } from './leads.ts'
export { DealExpiry } from './expiry.ts'
export type { ExpiryResult } from './expiry.ts'
export { InboundConnectors } from './inbound.ts'
export { convertEntry } from './contract.ts'
export { customerKey, registrableDomain, normalizedName } from './customer.ts'
export * from './machine.ts'
export { LEAD_STATES } from './types.ts'
export type * from './types.ts'

export interface DealSettings extends DealProgramDefaults {
  /** Hours a partner has to answer a lead when the publisher gives no acceptBy (DEALS_LEAD_ACCEPT_HOURS). */
  leadAcceptHours: number
  /** The inbound connectors' mapping sandbox (the REST sinks' limits). */
  sandbox?: Partial<MappingSandboxSettings>
}

export const DEFAULT_DEAL_SETTINGS: DealSettings = { protectionDays: 90, reminderDays: 7, leadAcceptHours: 48 }

export class DealRegistry {
  readonly deals: Deals
  readonly leads: Leads
  readonly inbound: InboundConnectors
  readonly expiry: DealExpiry
  private readonly listeners = new Set<() => void>()
  private sandbox: MappingSandbox | undefined

  constructor(cols: Collections, box: SecretBox, logger: Logger, settings: DealSettings = DEFAULT_DEAL_SETTINGS) {
    const written = () => {
      for (const l of this.listeners) l()
    }
    this.deals = new Deals(cols, settings, written)
    this.leads = new Leads(cols, this.deals, written, settings.leadAcceptHours)
    this.inbound = new InboundConnectors(
      cols,
      this.deals,
      box,
      () => (this.sandbox ??= new MappingSandbox({ processes: 1, ...settings.sandbox }, logger)),
    )
    this.expiry = new DealExpiry(this.deals, this.leads, logger)
  }

  /** Called after every write that added a deal or lead event (the deals' relay in this process wakes up). */
  onWrite(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    await this.sandbox?.close()
    this.sandbox = undefined
  }
}
