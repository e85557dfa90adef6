/**
 * A throwaway HTTP server on 127.0.0.1 (an ephemeral port) for the stand-ins the demo talks to: the
 * partners' webhook receivers and the simulated CRM. Each request is handed over with its whole body.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface LocalServer {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** Stops listening and ends every open connection (keep-alive ones too). */
  close(): Promise<void>
}

export async function startLocalServer(
  handle: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void,
  options: { keepAliveTimeout?: number } = {},
): Promise<LocalServer> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => handle(req, Buffer.concat(chunks), res))
  })
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
