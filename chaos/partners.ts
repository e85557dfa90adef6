/**
 * The partners' webhook endpoints: one receiver on 127.0.0.1 per partner (test/helpers/receiver.ts,
 * bodies not kept), each verifying every request's signature and recording, per event id, when it
 * first arrived, when it was first acknowledged, how often, and a digest of its body. A partner's
 * behaviour can be switched while the run goes on: answering, failing (500), hanging (accepts the
 * request and never answers) or answering with `Connection: close` (every next request needs a new
 * connection, hence a DNS lookup: the DNS fault needs that to bite).
 */
import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { Webhook } from 'standardwebhooks'
import { startReceiver, type Receiver } from '../test/helpers/receiver.ts'
import { verifyDelivery } from './deliveries.ts'

export type PartnerMode = 'ok' | 'fail' | 'hang' | 'close'

export interface Arrival {
  /** First time a request with this webhook-id arrived (whatever the answer). */
  first: number
  /** First time one was acknowledged (2xx); 0: never. */
  ack: number
  /** Requests acknowledged: more than 1 is a duplicate delivery. */
  acks: number
  receipts: number
  /** Digest of the first body: every later request with the id must carry the same. */
  digest: string
}

export interface WebhookPayload {
  type: string
  data: Record<string, unknown>
}

export class Partner {
  readonly arrivals = new Map<string, Arrival>()
  /** Event ids in the order of their first arrival. */
  readonly order: string[] = []
  /** Problems seen on arrival: a bad signature, another body under an id, a row or field outside the grant. */
  readonly problems: Array<{ kind: 'signature' | 'same-id-other-body' | 'outside-grant'; id: string; detail: string }> =
    []
  mode: PartnerMode = 'ok'
  secret = ''
  organizationId = ''
  subscriptionId = ''
  #wh: Webhook | undefined
  readonly #hung = new Set<ServerResponse>()

  private constructor(
    readonly name: string,
    readonly receiver: Receiver,
    /** Called with each verified payload; returns why it is outside the partner's grant, if it is. */
    private readonly outsideGrant: (p: WebhookPayload) => string | undefined,
  ) {}

  static async start(
    name: string,
    outsideGrant: (p: WebhookPayload) => string | undefined = () => undefined,
  ): Promise<Partner> {
    // eslint-disable-next-line prefer-const -- the receiver's handler refers to it before it exists
    let self: Partner | undefined
    const rx = await startReceiver((r, res) => self!.handle(r, res), { keep: false })
    self = new Partner(name, rx, outsideGrant)
    return self
  }

  /** The subscription's secret (whsec_...), known once it is created and before anything is sent. */
  setSecret(secret: string): void {
    this.secret = secret
    this.#wh = new Webhook(secret)
  }

  setMode(mode: PartnerMode): void {
    this.mode = mode
    if (mode !== 'hang') {
      // the platform gave up on them long ago (WEBHOOK_TIMEOUT_MS); close them
      for (const res of this.#hung) res.destroy()
      this.#hung.clear()
    }
  }

  private handle(r: { headers: Record<string, unknown>; body: string; at: number }, res: ServerResponse): void {
    const id = String(r.headers['webhook-id'] ?? '')
    let payload: WebhookPayload | undefined
    try {
      if (!this.#wh) throw new Error('no secret yet')
      payload = verifyDelivery<WebhookPayload>(this.#wh, r as never).payload
    } catch (err) {
      this.problems.push({ kind: 'signature', id, detail: (err as Error).message })
    }
    const digest = createHash('sha256').update(r.body).digest('base64').slice(0, 16)
    let a = this.arrivals.get(id)
    if (!a) {
      a = { first: r.at, ack: 0, acks: 0, receipts: 0, digest }
      this.arrivals.set(id, a)
      this.order.push(id)
      const why = payload ? this.outsideGrant(payload) : undefined
      if (why) this.problems.push({ kind: 'outside-grant', id, detail: why })
    } else if (a.digest !== digest) {
      this.problems.push({ kind: 'same-id-other-body', id, detail: `body digest ${digest}, first was ${a.digest}` })
    }
    a.receipts++
    switch (this.mode) {
      case 'fail':
        res.writeHead(500, { 'content-type': 'text/plain' }).end('chaos: failing')
        return
      case 'hang':
        this.#hung.add(res)
        res.once('close', () => this.#hung.delete(res))
        return
      default:
        if (a.ack === 0) a.ack = Date.now()
        a.acks++
        res.writeHead(204, this.mode === 'close' ? { connection: 'close' } : {}).end()
    }
  }

  async close(): Promise<void> {
    this.setMode('ok')
    await this.receiver.close()
  }
}
