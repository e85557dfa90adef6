import http from 'node:http'
import type { AddressInfo } from 'node:net'
import zlib from 'node:zlib'
import { expect } from 'chai'
import { readJsonBody, type BodyResult } from '../../producers/http-ingest/body.ts'

/** A real HTTP server that answers with what readJsonBody made of the request. */
describe('ingest request body (producers/http-ingest/body.ts)', () => {
  let server: http.Server
  let url: string
  const LIMIT = 1024

  before(async () => {
    server = http.createServer((req, res) => {
      void readJsonBody(req, LIMIT).then((r: BodyResult) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r)),
      )
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })
  after(() => new Promise((r) => server.close(r)))

  async function post(
    body: string | Buffer | ReadableStream,
    headers: Record<string, string> = {},
  ): Promise<BodyResult> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      duplex: 'half',
    } as RequestInit)
    return (await res.json()) as BodyResult
  }

  it('parses a JSON body, also with a byte order mark and charset=utf-8', async () => {
    expect(await post('[{"a":1}]')).to.deep.equal({ ok: true, value: [{ a: 1 }] })
    expect(await post('\ufeff[{"é":"ü"}]', { 'content-type': 'application/json; charset=UTF-8' })).to.deep.equal({
      ok: true,
      value: [{ é: 'ü' }],
    })
  })

  it('inflates gzip, deflate and br bodies', async () => {
    const json = JSON.stringify([{ sku: 'A' }])
    expect(await post(zlib.gzipSync(json), { 'content-encoding': 'gzip' })).to.deep.equal({
      ok: true,
      value: [{ sku: 'A' }],
    })
    expect(await post(zlib.deflateSync(json), { 'content-encoding': 'deflate' })).to.deep.equal({
      ok: true,
      value: [{ sku: 'A' }],
    })
    expect(await post(zlib.brotliCompressSync(json), { 'content-encoding': 'br' })).to.deep.equal({
      ok: true,
      value: [{ sku: 'A' }],
    })
  })

  it('refuses a body over the limit: declared, streamed without a length, or once inflated', async () => {
    const big = JSON.stringify(['x'.repeat(LIMIT)])
    const declared = await post(big)
    expect(declared).to.deep.include({ ok: false })
    expect((declared as { error: { status: number; type: string } }).error).to.include({
      status: 413,
      type: 'entity.too.large',
    })
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode('x'.repeat(400)))
        c.close()
      },
    })
    expect(((await post(stream)) as { error: { status: number } }).error.status).to.equal(413)
    const bomb = zlib.gzipSync(JSON.stringify(['y'.repeat(100 * LIMIT)]))
    expect(bomb.length).to.be.below(LIMIT)
    expect(((await post(bomb, { 'content-encoding': 'gzip' })) as { error: { status: number } }).error.status).to.equal(
      413,
    )
  })

  it('names what is wrong: malformed JSON, a broken gzip stream, another charset, an unknown encoding', async () => {
    expect(((await post('[{"a":')) as { error: { type: string } }).error.type).to.equal('entity.parse.failed')
    expect(
      ((await post(Buffer.from('not gzip'), { 'content-encoding': 'gzip' })) as { error: { type: string } }).error.type,
    ).to.equal('entity.parse.failed')
    expect((await post('[]', { 'content-type': 'application/json; charset=latin1' })) as unknown).to.deep.equal({
      ok: false,
      error: { status: 415, type: 'charset.unsupported', message: 'unsupported charset "LATIN1"' },
    })
    expect(
      ((await post('[]', { 'content-encoding': 'compress' })) as { error: { status: number; type: string } }).error,
    ).to.include({ status: 415, type: 'encoding.unsupported' })
  })
})
