/**
 * A real HTTP webhook receiver on 127.0.0.1 (ephemeral port) for tests and benchmarks: records every
 * request and answers with a programmable handler (default 204).
 */
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createUrlGuard, type UrlGuard } from '../../common/url-guard.ts'

export interface Received {
  headers: IncomingHttpHeaders
  body: string
  at: number
}

export type ReceiverHandler = (req: Received, res: ServerResponse, index: number) => void

export interface Receiver {
  url: string
  port: number
  received: Received[]
  /** TCP connections accepted so far (keep-alive reuse shows as a small number). */
  connections: number
  setHandler(handler: ReceiverHandler): void
  close(): Promise<void>
}

/**
 * `keep`: whether to keep the request bodies (benchmarks count only); `host` and `port`: where to
 * listen (default 127.0.0.1, an ephemeral port).
 */
export async function startReceiver(
  handler?: ReceiverHandler,
  options: { keep?: boolean; host?: string; port?: number } = {},
): Promise<Receiver> {
  let current: ReceiverHandler = handler ?? ((_r, res) => res.writeHead(204).end())
  const keep = options.keep ?? true
  let count = 0
  const state = { connections: 0 }
  const received: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r: Received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() }
      if (keep) received.push(r)
      current(r, res, count++)
    })
  })
  server.keepAliveTimeout = 60_000
  server.on('connection', () => state.connections++)
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://${host}:${port}/hooks`,
    port,
    received,
    get connections() {
      return state.connections
    },
    setHandler(h) {
      current = h
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** The URL guard with the tests' allowlist: public addresses, and 127.0.0.1 (where the receivers listen). */
export const loopbackOnlyGuard: UrlGuard = createUrlGuard({ allowlist: '127.0.0.1' })
