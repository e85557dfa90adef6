import { createServer, type RequestListener, type Server } from 'node:http'
import net, { type AddressInfo } from 'node:net'

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

/**
 * Sends `bytes` (latin1: every char one byte, so a test can send what no HTTP client would) to the server of `url`
 * and reads its answer until it closes the connection; fails when it has not after 3 s.
 */
export function rawHttp(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    let out = ''
    const c = net.connect(Number(port), hostname, () => c.write(Buffer.from(bytes, 'latin1')))
    c.setTimeout(3000, () => c.destroy(new Error(`the connection is still open after ${JSON.stringify(out)}`)))
    c.on('data', (d: Buffer) => (out += d.toString('utf8')))
    c.on('close', () => resolve(out))
    c.on('error', reject)
  })
}

/** A raw HTTP/1.1 answer's status, headers (lower-case names) and JSON body. */
export function parseRawAnswer(answer: string) {
  const at = answer.indexOf('\r\n\r\n')
  const [statusLine, ...lines] = answer.slice(0, at).split('\r\n')
  const headers = Object.fromEntries(
    lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
  )
  return {
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: JSON.parse(answer.slice(at + 4)) as Record<string, any>,
  }
}
