/**
 * Child process of the latency and partners benchmarks: N webhook receivers on 127.0.0.1 (ephemeral
 * ports, any path) answering 204, that record when each delivery arrived: `data.sequence` of the
 * webhook body and the arrival time in ms since the epoch (performance.timeOrigin + now(), comparable
 * with the parent's clock to well under a millisecond). Arrivals go to the parent in batches over IPC.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

const count = Number(process.argv[2] ?? '1')
const ports: number[] = []
let pending: number[] = [] // seq, at, seq, at, ...
for (let i = 0; i < count; i++) {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const at = performance.timeOrigin + performance.now()
      res.writeHead(204).end()
      try {
        const seq = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { sequence?: number } }).data
          ?.sequence
        if (typeof seq === 'number') pending.push(seq, at)
      } catch {
        // not a benchmark delivery
      }
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ports.push((server.address() as AddressInfo).port)
}
setInterval(() => {
  if (pending.length === 0) return
  process.send?.({ hits: pending })
  pending = []
}, 20)
process.send?.({ ports })
process.on('disconnect', () => process.exit(0))
