/**
 * Every API command and its subcommands (`distributary grants accept <id>`): the arguments and flags
 * each takes, what it does, and how it prints (a table or a line; the API's JSON with --json). The
 * commands live in api-subcommands-organizations.ts and api-subcommands-delivery.ts.
 */
import type { Sub } from './api-args.ts'
import { DELIVERY_SUBS } from './api-subcommands-delivery.ts'
import { ORGANIZATION_SUBS } from './api-subcommands-organizations.ts'
import { DEAL_SUBS } from './deal-commands.ts'
import { INBOUND_SUBS } from './inbound-commands.ts'

/** Every API command and its subcommands; the first subcommand is the default (`distributary grants` lists). */
export const SUBS: Record<string, Record<string, Sub>> = {
  ...ORGANIZATION_SUBS,
  ...DELIVERY_SUBS,
  ...DEAL_SUBS,
  ...INBOUND_SUBS,
}
