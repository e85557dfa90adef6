/**
 * Network faults between a kafkajs client and the real broker, injected in the client's own sockets
 * (kafkajs' `socketFactory`): every request and answer still goes to and comes from the real broker;
 * a test can only make the network lose things, as a broker killed or a connection cut does.
 *
 * `loseNextProduceAnswer(refuseMs)`: the next Produce request reaches the broker (which appends it),
 * its answer never reaches the client (the connection is cut 300 ms later), and Produce requests in
 * the following `refuseMs` are cut before they are sent, so the client's own retries fail too.
 * `refuseProduce(ms)`: every Produce request in the next `ms` is cut before it is sent (Kafka out of
 * reach for this client only).
 */
import net from 'node:net'
import type { ISocketFactory } from 'kafkajs'

const PRODUCE = 0 // Kafka API key of Produce

export interface FaultySockets {
  socketFactory: ISocketFactory
  loseNextProduceAnswer(refuseMs: number): void
  refuseProduce(ms: number): void
  /** Produce requests whose answer was lost, and those cut before they were sent. */
  readonly lost: number
  readonly refused: number
}

/** The API key of a request written by kafkajs (one buffer per request: int32 size, int16 api key, ...). */
const apiKey = (chunk: unknown): number | undefined =>
  Buffer.isBuffer(chunk) && chunk.length >= 6 ? chunk.readInt16BE(4) : undefined

export function faultySockets(): FaultySockets {
  let loseNext = false
  let refuseMs = 0
  let refuseUntil = 0
  let lost = 0
  let refused = 0
  const socketFactory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = net.connect({ host, port }, onConnect)
    socket.setKeepAlive(true, 60_000)
    let muted = false
    const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean
    socket.emit = ((event: string | symbol, ...args: unknown[]) =>
      event === 'data' && muted ? true : emit(event, ...args)) as typeof socket.emit
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (apiKey(chunk) === PRODUCE) {
        if (Date.now() < refuseUntil) {
          refused++
          setImmediate(() => socket.destroy(new Error('injected fault: connection cut before the request was sent')))
          return true
        }
        if (loseNext) {
          loseNext = false
          lost++
          muted = true // the broker's answer is dropped on the floor
          refuseUntil = Date.now() + refuseMs
          const ok = write(chunk, ...rest)
          setTimeout(() => socket.destroy(new Error('injected fault: connection cut after the request was sent')), 300)
          return ok
        }
      }
      return write(chunk, ...rest)
    }) as typeof socket.write
    return socket
  }
  return {
    socketFactory,
    loseNextProduceAnswer(ms: number) {
      loseNext = true
      refuseMs = ms
    },
    refuseProduce(ms: number) {
      refuseUntil = Date.now() + ms
    },
    get lost() {
      return lost
    },
    get refused() {
      return refused
    },
  }
}
