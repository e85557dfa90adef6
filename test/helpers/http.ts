import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface LocalServer {
  server: Server
  /** http://127.0.0.1:<port>, without a trailing slash. */
  url: string
  /** Closes the server, and the connections still open (a keep-alive one would hold it open). */
  close(): Promise<void>
}

/** Serves `app` (an express app, or any request listener) on a free port of 127.0.0.1. */
export async function listenLocal(app: RequestListener): Promise<LocalServer> {
  const server = createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}
