/**
 * A CRM-like partner API and its OAuth2 token endpoint (express) on 127.0.0.1 (ephemeral port), for
 * the REST sink tests:
 *  - POST /oauth/token: client credentials (HTTP Basic or form fields), issues opaque bearer tokens;
 *    `tokenMode` makes it refuse the client (401 invalid_client) or fail (503 with Retry-After).
 *  - PUT|PATCH /api/stock/:sku: an upsert by external id (bearer token required), the last body wins.
 *  - POST /api/stock: a batch (JSON array) or a single item, stored by `externalId`; an item with
 *    `externalId` "REJECT" makes the whole request answer 422.
 * Every API request is recorded (method, path, headers, body) in order.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import express, { type Request } from 'express'

export interface CrmRequest {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
  body: unknown
  status: number
}

export interface Crm {
  url: string
  tokenUrl: string
  /** Client credentials the token endpoint accepts. */
  clientId: string
  clientSecret: string
  /** Token endpoint calls, in order (grant form fields, without the secret). */
  tokenRequests: Array<{ clientId: string; scope?: string; audience?: string; via: 'basic' | 'body' }>
  tokensIssued: string[]
  requests: CrmRequest[]
  /** Latest body per external id. */
  records: Map<string, unknown>
  tokenMode: 'ok' | 'reject' | 'unavailable'
  /** Answer status for the API (after auth); 'ok' stores the body. */
  apiMode: 'ok' | 'unavailable' | 'reject'
  /** Lifetime of issued tokens in seconds. */
  expiresIn: number
  /** False: the API answers 401 to every token, even fresh ones. */
  acceptTokens: boolean
  /** Makes the API refuse every token issued so far (as after a key rotation on its side). */
  revokeAll(): void
  close(): Promise<void>
}

export async function startCrm(): Promise<Crm> {
  const valid = new Set<string>()
  let n = 0
  const app = express()
  app.use(express.urlencoded({ extended: false }))
  app.use(express.json({ limit: '5mb' }))
  const crm: Crm = {
    url: '',
    tokenUrl: '',
    clientId: 'distributary',
    clientSecret: 'crm-secret-' + Math.random().toString(36).slice(2),
    tokenRequests: [],
    tokensIssued: [],
    requests: [],
    records: new Map(),
    tokenMode: 'ok',
    apiMode: 'ok',
    expiresIn: 3600,
    acceptTokens: true,
    revokeAll: () => valid.clear(),
    close: async () => undefined,
  }

  app.post('/oauth/token', (req, res) => {
    let clientId: string | undefined
    let secret: string | undefined
    let via: 'basic' | 'body' = 'body'
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')
    if (basic) {
      const [id, s] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').map(decodeURIComponent) as [
        string,
        string,
      ]
      clientId = id
      secret = s
      via = 'basic'
    } else {
      clientId = req.body?.client_id
      secret = req.body?.client_secret
    }
    crm.tokenRequests.push({
      clientId: String(clientId),
      ...(req.body?.scope ? { scope: req.body.scope } : {}),
      ...(req.body?.audience ? { audience: req.body.audience } : {}),
      via,
    })
    if (crm.tokenMode === 'unavailable')
      return res.status(503).set('retry-after', '7').json({ error: 'temporarily_unavailable' })
    if (
      crm.tokenMode === 'reject' ||
      req.body?.grant_type !== 'client_credentials' ||
      clientId !== crm.clientId ||
      secret !== crm.clientSecret
    ) {
      return res.status(401).json({ error: 'invalid_client', error_description: 'client authentication failed' })
    }
    const token = `tok-${++n}-${Math.random().toString(36).slice(2)}`
    valid.add(token)
    crm.tokensIssued.push(token)
    res.set('cache-control', 'no-store').json({ access_token: token, token_type: 'Bearer', expires_in: crm.expiresIn })
  })

  const authorized = (req: Request) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    return crm.acceptTokens && m !== null && valid.has(m[1]!)
  }
  const record = (req: Request, status: number) =>
    crm.requests.push({ method: req.method, path: req.path, headers: req.headers, body: req.body, status })

  app.all('/api/stock/:sku', (req, res) => {
    if (!authorized(req)) return (record(req, 401), res.status(401).json({ error: 'invalid_token' }))
    if (crm.apiMode === 'unavailable') return (record(req, 503), res.status(503).send('down'))
    if (crm.apiMode === 'reject') return (record(req, 422), res.status(422).json({ error: 'invalid' }))
    record(req, 200)
    crm.records.set(String(req.params.sku), req.body)
    res.status(200).json({ id: req.params.sku })
  })

  app.post('/api/stock', (req, res) => {
    if (!authorized(req)) return (record(req, 401), res.status(401).json({ error: 'invalid_token' }))
    if (crm.apiMode === 'unavailable') return (record(req, 503), res.status(503).send('down'))
    const items: Array<{ externalId?: string }> = Array.isArray(req.body) ? req.body : [req.body]
    if (crm.apiMode === 'reject' || items.some((i) => i?.externalId === 'REJECT'))
      return (record(req, 422), res.status(422).json({ error: 'invalid item' }))
    record(req, 200)
    for (const i of items) crm.records.set(String(i.externalId), i)
    res.status(200).json({ accepted: items.length })
  })

  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  server.keepAliveTimeout = 60_000
  const port = (server.address() as AddressInfo).port
  crm.url = `http://127.0.0.1:${port}`
  crm.tokenUrl = `${crm.url}/oauth/token`
  crm.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return crm
}
