/**
 * Requests Node's HTTP parser refuses (found by fuzzing the management API with Schemathesis, docs/fuzzing.md): they
 * are answered in the server's error format, naming the header at fault, and the answer arrives whole instead of a
 * bare 400 or a connection reset.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import { answerParseErrorsAsProblems } from '../../api/problem.ts'
import { parseRawAnswer as parsed, rawHttp } from '../helpers/http.ts'

describe('requests the HTTP parser refuses', () => {
  let server: http.Server
  let url: string
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('ok'), 50)
      else res.end('ok')
    })
    answerParseErrorsAsProblems(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('a control character in a header value: 400 problem+json naming the header', async () => {
    const body = '{"name":"x"}'
    const answer = await rawHttp(
      url,
      'POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ab\x1bcdefgh\r\n' +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    )
    const r = parsed(answer)
    expect(r.status, answer).to.equal(400)
    expect(r.headers['content-type']).to.equal('application/problem+json; charset=utf-8')
    expect(r.headers.connection).to.equal('close')
    expect(Number(r.headers['content-length'])).to.equal(Buffer.byteLength(answer.split('\r\n\r\n')[1]!))
    expect(r.body).to.include({ type: 'about:blank', title: 'Bad Request', status: 400 })
    expect(r.body.errors).to.deep.equal([
      { field: 'Idempotency-Key', in: 'header', message: 'holds a character HTTP does not allow in a header value' },
    ])
  })

  it('a malformed header name or Content-Length: 400 problem+json saying what the parser found', async () => {
    for (const [line, reason] of [
      ['Bad Name: v', 'invalid header token'],
      ['Content-Length: abc', 'invalid character in content-length'],
    ] as const) {
      const r = parsed(await rawHttp(url, `GET /v1/grants HTTP/1.1\r\nHost: x\r\n${line}\r\n\r\n`))
      expect(r.status).to.equal(400)
      expect(r.body.detail).to.include(reason)
      expect(r.body).to.not.have.property('errors')
    }
  })

  it('headers over the size Node reads: 431', async () => {
    const r = parsed(await rawHttp(url, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`))
    expect(r.status).to.equal(431)
    expect(r.body).to.include({ title: 'Request Header Fields Too Large', status: 431 })
  })

  it('a later request of a keep-alive connection: the first answer (even a slow one), then the refusal', async () => {
    for (const path of ['/', '/slow']) {
      const answer = await rawHttp(
        url,
        `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nA: \x07\r\n\r\n`,
      )
      expect(answer, JSON.stringify(answer)).to.match(
        /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nokHTTP\/1\.1 400 Bad Request\r\n/,
      )
      expect(answer).to.include('"field":"A"')
    }
  })
})
