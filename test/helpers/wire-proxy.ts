/**
 * A TCP proxy in front of the real MongoDB-compatible server that reads the wire protocol's message
 * framing (int32 little-endian length first) from client to server, so a test can see which
 * messages the server received and cut a connection in the middle of a request, as a network
 * failure does. Answers from the server are passed through untouched. No MongoDB behaviour is
 * imitated: every answer comes from the real server.
 */
import net from 'node:net'

/** What to do with one client message: pass it on, or drop the connection without an answer. */
export type WireVerdict = 'forward' | 'cut'

export interface WireProxy {
  host: string
  port: number
  /** Client connections accepted so far. */
  readonly connections: number
  close(): Promise<void>
}

/** `listen`: where the proxy listens (default 127.0.0.1, an ephemeral port). */
export async function startWireProxy(
  target: { host: string; port: number },
  onMessage: (message: Buffer) => WireVerdict | Promise<WireVerdict>,
  listen: { host?: string; port?: number } = {},
): Promise<WireProxy> {
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((client) => {
    connections++
    const upstream = net.connect(target.port, target.host)
    sockets.add(client)
    sockets.add(upstream)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
    upstream.on('data', (d) => client.write(d))
    let pending = Buffer.alloc(0)
    let chain = Promise.resolve()
    client.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 4) {
        const length = pending.readInt32LE(0)
        if (pending.length < length) break
        const message = pending.subarray(0, length)
        pending = pending.subarray(length)
        // in order, one message at a time (a verdict may wait for the test to set the server up)
        chain = chain.then(async () => {
          if (client.destroyed) return
          const verdict = await onMessage(message)
          if (verdict === 'cut') end()
          else upstream.write(message)
        })
      }
    })
  })
  const host = listen.host ?? '127.0.0.1'
  await new Promise<void>((resolve) => server.listen(listen.port ?? 0, host, resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    host,
    port,
    get connections() {
      return connections
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
