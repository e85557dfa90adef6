/**
 * The deal registration state machine (docs/deals.md): which actor may take which action in which
 * state, and where it leads. The one table every path consults (API, CRM inbound, expiry job), so
 * that an illegal step is refused the same way everywhere: a 409 naming the current state and the
 * actions allowed in it.
 */
import { ConflictError } from '../errors.ts'

export const DEAL_STATES = [
  'submitted',
  'conflict_review',
  'under_review',
  'returned',
  'approved',
  'rejected',
  'won',
  'lost',
  'expired',
  'cancelled',
] as const
export type DealState = (typeof DEAL_STATES)[number]

/** Actions of the partner, the publisher (manufacturer) and the platform. `remind` changes no state. */
export const DEAL_ACTIONS = [
  'submit',
  'resubmit',
  'cancel',
  'review',
  'approve',
  'reject',
  'return',
  'won',
  'lost',
  'expire',
  'release',
  'remind',
] as const
export type DealAction = (typeof DEAL_ACTIONS)[number]

export type Actor = 'partner' | 'publisher' | 'platform'

/** Who takes each action. */
export const ACTOR_OF: Record<DealAction, Actor> = {
  submit: 'partner',
  resubmit: 'partner',
  cancel: 'partner',
  review: 'publisher',
  approve: 'publisher',
  reject: 'publisher',
  return: 'publisher',
  won: 'publisher',
  lost: 'publisher',
  expire: 'platform',
  release: 'platform',
  remind: 'platform',
}

/** The actions the publisher may send from its CRM (POST /v1/inbound/{id}) and the API's decision route. */
export const PUBLISHER_DECISIONS = ['review', 'approve', 'reject', 'return', 'won', 'lost'] as const

/**
 * state → action → next state. `submit` creates the registration (no state before it); `resubmit`
 * and `submit` land in `conflict_review` instead of `submitted` when the conflict check finds one.
 */
const TABLE: Record<DealState, Partial<Record<DealAction, DealState>>> = {
  submitted: {
    review: 'under_review',
    approve: 'approved',
    reject: 'rejected',
    return: 'returned',
    cancel: 'cancelled',
  },
  conflict_review: {
    review: 'under_review',
    approve: 'approved',
    reject: 'rejected',
    return: 'returned',
    cancel: 'cancelled',
    release: 'under_review',
  },
  under_review: { approve: 'approved', reject: 'rejected', return: 'returned', cancel: 'cancelled' },
  returned: { resubmit: 'submitted', cancel: 'cancelled' },
  approved: { won: 'won', lost: 'lost', expire: 'expired', cancel: 'cancelled', remind: 'approved' },
  rejected: {},
  won: {},
  lost: {},
  expired: {},
  cancelled: {},
}

/** States that wait for a decision: an earlier registration in one of them conflicts with a new one. */
export const PENDING_STATES: readonly DealState[] = ['submitted', 'conflict_review', 'under_review', 'returned']

/** The actions an actor may take in a state (admins act as either side). */
export function allowedActions(state: DealState, actor?: Actor): DealAction[] {
  return (Object.keys(TABLE[state]) as DealAction[]).filter((a) => actor === undefined || ACTOR_OF[a] === actor)
}

/** A step refused by the state machine: 409, naming the current state and what is allowed in it. */
export class TransitionConflictError extends ConflictError {
  constructor(
    readonly dealId: string,
    readonly currentState: DealState,
    readonly action: string,
    readonly allowed: DealAction[],
  ) {
    const others = allowedActions(currentState)
    const list =
      allowed.length > 0
        ? allowed.join(', ')
        : others.length === 0
          ? 'none (a final state)'
          : `none of yours (the other side's: ${others.join(', ')})`
    super(`deal ${dealId} is ${currentState}: ${action} is not allowed; allowed actions: ${list}`, 'action')
  }
}

/** The next state, or a TransitionConflictError (for the actor's view of what is allowed). */
export function nextState(dealId: string, state: DealState, action: DealAction, actor?: Actor): DealState {
  const to = TABLE[state][action]
  if (to === undefined || (actor !== undefined && ACTOR_OF[action] !== actor)) {
    throw new TransitionConflictError(dealId, state, action, allowedActions(state, actor))
  }
  return to
}

/** The deal contract's status of a state (schemas/avro/deal-registration.avsc). */
export const CONTRACT_STATUS: Record<DealState, string> = {
  submitted: 'REGISTERED',
  conflict_review: 'CONFLICT_REVIEW',
  under_review: 'UNDER_REVIEW',
  returned: 'RETURNED',
  approved: 'APPROVED',
  rejected: 'REJECTED',
  won: 'WON',
  lost: 'LOST',
  expired: 'EXPIRED',
  cancelled: 'CANCELLED',
}

/** ce_type of the event each action publishes (schemas/topics.ts). */
export const EVENT_TYPE_OF: Record<DealAction, string> = {
  submit: 'deal.registered',
  resubmit: 'deal.resubmitted',
  cancel: 'deal.cancelled',
  review: 'deal.reviewing',
  approve: 'deal.approved',
  reject: 'deal.rejected',
  return: 'deal.returned',
  won: 'deal.won',
  lost: 'deal.lost',
  expire: 'deal.expired',
  release: 'deal.reviewing',
  remind: 'deal.expiring',
}
