/**
 * Child process of the fanout benchmark: N webhook receivers on 127.0.0.1 (ephemeral ports) that
 * answer 204 to every POST, so that the measured process only does the sending.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

const count = Number(process.argv[2] ?? '100')
const servers: http.Server[] = []
let connections = 0
const ports: number[] = []
for (let i = 0; i < count; i++) {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(204).end())
  })
  server.keepAliveTimeout = 60_000
  server.on('connection', () => connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  ports.push((server.address() as AddressInfo).port)
}
process.send?.({ ports })
process.on('message', () => process.send?.({ connections }))
process.on('disconnect', () => process.exit(0))
