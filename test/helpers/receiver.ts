/**
 * A real HTTP webhook receiver on 127.0.0.1 (ephemeral port) for tests and benchmarks: records every
 * request and answers with a programmable handler (default 204).
 */
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

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

/** Whether to keep the request bodies (benchmarks count only). */
export async function startReceiver(handler?: ReceiverHandler, options: { keep?: boolean } = {}): Promise<Receiver> {
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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/hooks`,
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

/** A guard that allows 127.0.0.1 only, as the tests' allowlist. */
export async function loopbackOnlyGuard(url: string): Promise<void> {
  if (new URL(url).hostname !== '127.0.0.1') throw new Error(`${url} is not allowlisted`)
}
