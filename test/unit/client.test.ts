/**
 * The typed management client (client/index.ts): its types are what the OpenAPI document gives now
 * (client/openapi.d.ts: generated, not committed; `npm ci` and `npm run client` write it), and against an
 * HTTP server it sends the key and the JSON, reads the answers, and turns every error into one line naming
 * the status, title, detail and field.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { CLIENT_TYPES_FILE, clientTypesSource } from '../../api/openapi/client-types.ts'
import { PROJECT_ROOT } from '../../common/paths.ts'
import { allPages, ApiProblem, ApiUnreachable, createManagementClient, data } from '../../client/index.ts'

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
}

describe('typed management client', function () {
  this.timeout(30_000)

  it('client/openapi.d.ts is what the generator gives from the OpenAPI document now (npm run client)', async () => {
    expect(fs.existsSync(CLIENT_TYPES_FILE), 'written by npm ci (the prepare script) or npm run client').to.equal(true)
    expect(fs.readFileSync(CLIENT_TYPES_FILE, 'utf8'), 'stale: npm run client rewrites it').to.equal(
      await clientTypesSource(),
    )
  })

  it('client/openapi.d.ts is generated, not committed: npm ci and npm test write it, git ignores it', () => {
    const read = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8')
    expect(read('.gitignore').split('\n')).to.include('client/openapi.d.ts')
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
    expect(scripts.prepare).to.equal('node api/openapi/prepare-client.mjs')
    expect(scripts.pretest).to.include('npm run client')
  })

  it('the prepare script writes nothing and succeeds in a production install (no dev dependencies)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prepare-client-'))
    try {
      const script = path.join(dir, 'api', 'openapi', 'prepare-client.mjs')
      fs.mkdirSync(path.dirname(script), { recursive: true })
      fs.copyFileSync(path.join(PROJECT_ROOT, 'api', 'openapi', 'prepare-client.mjs'), script)
      const run = spawnSync(process.execPath, [script], { cwd: dir, env: { ...process.env, NODE_PATH: '' } })
      expect(run.status, run.stderr.toString()).to.equal(0)
      expect(run.stdout.toString()).to.include('not written: no dev dependencies')
      expect(fs.readdirSync(dir)).to.deep.equal(['api'])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  describe('against an HTTP server', () => {
    let server: http.Server
    let url: string
    const seen: Seen[] = []
    /** What the server answers next: status, content type, body. */
    let answer: (req: Seen) => [number, string, string] = () => [200, 'application/json', '{}']

    before(async () => {
      server = http.createServer((req, res) => {
        let body = ''
        req.on('data', (c: Buffer) => (body += c.toString()))
        req.on('end', () => {
          const s = { method: req.method!, url: req.url!, headers: req.headers, body }
          seen.push(s)
          const [status, type, text] = answer(s)
          res.writeHead(status, { 'content-type': type }).end(text)
        })
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
    })

    after(() => new Promise<void>((resolve) => server.close(() => resolve())))

    beforeEach(() => {
      seen.length = 0
    })

    it('sends the key as a bearer token and the body as JSON under /v1, and returns the typed answer', async () => {
      answer = () => [
        201,
        'application/json',
        JSON.stringify({ id: 'org_1', kind: 'partner', name: 'Northwind', slug: 'northwind' }),
      ]
      const api = createManagementClient({ baseUrl: url, apiKey: 'dk_abc.secret' })
      const org = await data(
        api.POST('/organizations', { body: { kind: 'partner', name: 'Northwind', slug: 'northwind' } }),
      )
      expect(org.slug).to.equal('northwind')
      expect(seen).to.have.length(1)
      expect(seen[0]!.method).to.equal('POST')
      expect(seen[0]!.url).to.equal('/v1/organizations')
      expect(seen[0]!.headers.authorization).to.equal('Bearer dk_abc.secret')
      expect(seen[0]!.headers['content-type']).to.equal('application/json')
      expect(JSON.parse(seen[0]!.body)).to.deep.equal({ kind: 'partner', name: 'Northwind', slug: 'northwind' })
    })

    it('a 204 is undefined; allPages follows nextCursor to the last page', async () => {
      answer = (req) => {
        if (req.method === 'DELETE') return [204, 'application/json', '']
        const cursor = new URL(req.url, 'http://x').searchParams.get('cursor')
        return [
          200,
          'application/json',
          JSON.stringify(
            cursor ? { items: [{ id: 'grt_2' }], nextCursor: null } : { items: [{ id: 'grt_1' }], nextCursor: 'c1' },
          ),
        ]
      }
      const api = createManagementClient({ baseUrl: url })
      expect(await data(api.DELETE('/grants/{grantId}', { params: { path: { grantId: 'grt_1' } } }))).to.equal(
        undefined,
      )
      const rows = await allPages((cursor) => data(api.GET('/grants', { params: { query: { limit: 1, cursor } } })))
      expect(rows.map((r) => r.id)).to.deep.equal(['grt_1', 'grt_2'])
      expect(seen.map((s) => s.url)).to.deep.equal([
        '/v1/grants/grt_1',
        '/v1/grants?limit=1',
        '/v1/grants?limit=1&cursor=c1',
      ])
      expect(seen[0]!.headers.authorization, 'no key, no header').to.equal(undefined)
    })

    it(
      'throws a problem+json answer as one ApiProblem line: status, title, detail ' + 'and each field at fault, once',
      async () => {
        const api = createManagementClient({ baseUrl: url, apiKey: 'k' })
        answer = () => [
          422,
          'application/problem+json',
          JSON.stringify({
            type: 'about:blank',
            title: 'Unprocessable Content',
            status: 422,
            detail: 'publisherId: is required with an admin key',
            errors: [{ field: 'publisherId', message: 'is required with an admin key' }],
          }),
        ]
        const err = await api
          .POST('/grants', { body: { partnerId: 'org_1', entitlements: [{ eventType: 'deal.won' }] } })
          .then(
            () => undefined,
            (e: unknown) => e,
          )
        expect(err).to.be.instanceOf(ApiProblem)
        const p = err as ApiProblem
        expect(p.message).to.equal('422 Unprocessable Content: publisherId: is required with an admin key')
        expect([p.status, p.title, p.errors]).to.deep.equal([
          422,
          'Unprocessable Content',
          [{ field: 'publisherId', message: 'is required with an admin key' }],
        ])

        answer = () => [
          401,
          'application/problem+json',
          JSON.stringify({
            title: 'Unauthorized',
            status: 401,
            detail: 'the API key is unknown, revoked or expired',
            errors: [{ field: 'Authorization', message: 'is not a valid API key' }],
          }),
        ]
        const unauthorized = await api.GET('/grants').then(
          () => undefined,
          (e: unknown) => e,
        )
        expect((unauthorized as ApiProblem).message).to.equal(
          '401 Unauthorized: the API key is unknown, revoked or expired (Authorization: is not a valid API key)',
        )

        answer = () => [
          409,
          'application/problem+json',
          JSON.stringify({
            title: 'Conflict',
            status: 409,
            detail: 'an organization with slug acme exists',
            errors: [{ field: 'slug', message: 'an organization with slug acme exists' }],
          }),
        ]
        const conflict = await api
          .POST('/organizations', { body: { kind: 'publisher', name: 'Acme', slug: 'acme' } })
          .then(
            () => undefined,
            (e: unknown) => e,
          )
        expect((conflict as ApiProblem).message).to.equal('409 Conflict: slug: an organization with slug acme exists')
      },
    )

    it('an answer that is not problem+json keeps its status text and (shortened, on one line) its text', async () => {
      answer = () => [502, 'text/html', '<html>\n<body>Bad gateway</body>\n</html>']
      const err = await createManagementClient({ baseUrl: url })
        .GET('/connectors')
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(err).to.be.instanceOf(ApiProblem)
      expect((err as ApiProblem).message).to.equal('502 Bad Gateway: <html> <body>Bad gateway</body> </html>')
    })
  })

  it('a server that does not answer is ApiUnreachable, naming the URL', async () => {
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const err = await createManagementClient({ baseUrl: `http://127.0.0.1:${port}` })
      .GET('/connectors')
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(err).to.be.instanceOf(ApiUnreachable)
    expect((err as Error).message).to.equal(`the management API at http://127.0.0.1:${port} does not answer`)
  })
})
