/**
 * The chaos runner's parts that need no stack: its options (validated, errors naming the flag and the
 * variable), per-key order of first deliveries, and the resolver fault (chaos/dns-preload.mjs) in a
 * real node process: the chaos name resolves from the hosts file, fails with ENOTFOUND without its
 * line, and every other name is left to the real resolver.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { expect } from 'chai'
import { perKeyOrderViolations } from '../../chaos/deliveries.ts'
import { ChaosOptionError, DEFAULT_EVENTS, parseOptions, scenarioMs, TIMINGS } from '../../chaos/options.ts'
import { PROJECT_ROOT } from '../../stack/index.ts'

describe('chaos runner', () => {
  describe('options', () => {
    const quiet = () => undefined
    it('spreads the default events over the scenario, so that every phase publishes', () => {
      for (const mode of ['short', 'full'] as const) {
        const o = parseOptions(mode === 'short' ? ['--short'] : [], {}, quiet)
        expect(o.events).to.equal(DEFAULT_EVENTS[mode])
        expect((o.events / o.rate) * 1000, `${mode}: publishing covers the faults`).to.be.at.least(
          scenarioMs(TIMINGS[mode]),
        )
      }
      expect(DEFAULT_EVENTS.full).to.be.at.least(100_000)
    })

    it('takes flags over CHAOS_* variables', () => {
      const o = parseOptions(
        ['--short', '--events', '9000'],
        { CHAOS_EVENTS: '5000', CHAOS_RATE: '30', CHAOS_DIR: '/tmp/x' },
        quiet,
      )
      expect([o.mode, o.events, o.rate, o.dir]).to.deep.equal(['short', 9000, 30, '/tmp/x'])
    })

    it('refuses bad values, naming the flag or the variable', () => {
      const fails = (argv: string[], env: NodeJS.ProcessEnv, msg: RegExp) =>
        expect(() => parseOptions(argv, env, quiet)).to.throw(ChaosOptionError, msg)
      fails(['--events', 'many'], {}, /--events must be a positive whole number, got "many"/)
      fails([], { CHAOS_RATE: '-3' }, /CHAOS_RATE must be a positive whole number/)
      fails(
        ['--short', '--events', '100'],
        {},
        new RegExp(
          "100 events at \\d+/s last \\d+ s, shorter than the short scenario's \\d+ s of faults: " +
            'raise --events \\(CHAOS_EVENTS\\) or lower --rate \\(CHAOS_RATE\\)',
        ),
      )
      fails(['--short', '--events', '100000', '--rate', '20'], {}, /publishes for 6 min at most/)
      fails(['--rate', '5000'], {}, /at most 2000/)
      fails(['--bogus'], {}, /bogus/)
    })
  })

  it('per-key order: first deliveries only, each key on its own', () => {
    const d = (id: string, key: string, seq: number) => ({ id, key, seq })
    expect(
      perKeyOrderViolations([
        d('a', 'k1', 1),
        d('b', 'k2', 1),
        d('a', 'k1', 1),
        d('c', 'k1', 2),
        d('b', 'k2', 1),
        d('d', 'k2', 5),
      ]),
    ).to.deep.equal([])
    expect(perKeyOrderViolations([d('a', 'k1', 1), d('c', 'k1', 3), d('b', 'k1', 2), d('x', 'k2', 1)])).to.deep.equal([
      { key: 'k1', seqs: [1, 3, 2], at: 2 },
    ])
  })

  it(
    'the resolver fault: the chaos name from the hosts file, ENOTFOUND without ' + 'its line, other names untouched',
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chaos-dns-'))
      try {
        const hosts = path.join(dir, 'hosts')
        const script = `
        import dns from 'node:dns/promises'
        import dnsCallbacks from 'node:dns'
        import fs from 'node:fs'
        const out = []
        const look = (n) => dns.lookup(n, { all: true }).then((a) => a.map((x) => x.address).join(' '), (e) => e.code)
        out.push(await look('partner-e.chaos.invalid'))
        fs.writeFileSync(${JSON.stringify(hosts)}, '# removed\\n')
        out.push(await look('partner-e.chaos.invalid'))
        out.push(await new Promise((r) => (dnsCallbacks.lookup('partner-e.chaos.invalid', (e) => r(e?.code)))))
        out.push(await look('other.chaos.invalid'))
        out.push(await look('localhost') !== '' ? 'resolved' : 'not')
        console.log(JSON.stringify(out))
      `
        fs.writeFileSync(hosts, '127.0.0.1 partner-e.chaos.invalid\n')
        const out = execFileSync(
          process.execPath,
          [
            '--import',
            pathToFileURL(path.join(PROJECT_ROOT, 'chaos', 'dns-preload.mjs')).href,
            '--input-type=module',
            '-e',
            script,
          ],
          {
            env: {
              ...process.env,
              NODE_OPTIONS: '',
              CHAOS_HOSTS_FILE: hosts,
              CHAOS_DNS_NAMES: 'partner-e.chaos.invalid',
            },
            encoding: 'utf8',
          },
        )
        // .invalid never resolves for real (RFC 6761): the other name's failure is the real resolver's
        expect(JSON.parse(out)).to.deep.equal(['127.0.0.1', 'ENOTFOUND', 'ENOTFOUND', 'ENOTFOUND', 'resolved'])
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
  )
})
