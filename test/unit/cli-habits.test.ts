/**
 * The command line's habits, as a user meets them (the built bundle run with plain node): a version,
 * help per command, and a wrong word or option answered with one line on stderr and exit 2, never a
 * stack trace. None of these reach a server.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { expect } from 'chai'
import { buildBundle, PLATFORM_BUNDLE, ROOT } from '../../cli/build.mjs'

const run = (...args: string[]) => {
  const res = spawnSync(process.execPath, [PLATFORM_BUNDLE, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  return { code: res.status, out: res.stdout, err: res.stderr }
}

describe('CLI habits', function () {
  this.timeout(30_000)
  before(async () => {
    await buildBundle()
  })

  it('--version and -v print the package version (as JSON with --json)', () => {
    const { version } = JSON.parse(fs.readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string }
    expect(run('--version')).to.deep.equal({ code: 0, out: `distributary ${version}\n`, err: '' })
    expect(JSON.parse(run('-v', '--json').out)).to.deep.equal({ version })
  })

  it("<command> --help prints that command's usage on stdout, exit 0; --help alone the whole list", () => {
    for (const command of [
      'start',
      'demo',
      'stack',
      'partners',
      'organizations',
      'keys',
      'subscriptions',
      'grants',
      'connectors',
      'dlq',
      'sources',
      'migrate',
    ]) {
      const r = run(command, '--help')
      expect([r.code, r.err], command).to.deep.equal([0, ''])
      expect(r.out, command).to.match(new RegExp(`^usage: distributary ${command}\\b`))
    }
    const all = run('--help')
    expect(all.code).to.equal(0)
    expect(all.out).to.match(/^usage: distributary <command>/)
    expect(all.out).to.contain('migrate keys')
  })

  it(
    'the help of a command over the API shows each subcommand with the flags it ' + 'takes, and what each flag sets',
    () => {
      const help = run('subscriptions', '--help').out
      expect(help).to.match(
        new RegExp(
          '^ +distributary subscriptions create \\[--partner-id <org id>\\] \\[--name <name>\\] ' +
            '\\[--event-type <type>\\]\\.\\.\\. \\[--webhook-url <url>\\].* \\[--from-file <file\\|->\\] \\[--json\\]$',
          'm',
        ),
      )
      expect(help).to.match(/^ +distributary subscriptions update <id> .*\[--from-file <file\|->\] \[--json\]$/m)
      expect(help).to.match(/^ +distributary subscriptions delete <id> \[--json\]$/m)
      expect(help).to.match(
        /^ {2}create --from-file <file\|->\n +the API's request JSON, SubscriptionCreate of GET \/v1\/openapi.json/m,
      )
      for (const [command, flags] of [
        ['organizations', ['--kind', '--name', '--slug']],
        ['keys', ['--scope', '--organization-id', '--overlap-seconds']],
        ['grants', ['--partner-id', '--publisher-id', '--event-type', '--fields', '--filter']],
      ] as const) {
        const text = run(command, '--help').out
        for (const flag of [...flags, '--from-file', '--json']) expect(text, `${command} ${flag}`).to.contain(flag)
      }
    },
  )

  it('an unknown command, subcommand or option, or an option without its value: one line on stderr, exit 2', () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /^distributary: unknown command "frobnicate" \(commands: .*\)\n$/],
      [['stack', 'sideways'], /^distributary: unknown stack command "sideways" .*\n$/],
      [['start', '--colour'], /^distributary: unknown option --colour \(see distributary --help\)\n$/],
      [['start', '--role'], /^distributary: option --role needs a value .*\n$/],
      [['grants', '--json=yes'], /^distributary: option --json takes no value .*\n$/],
      [
        ['grants', 'frobnicate'],
        new RegExp(
          '^distributary: unknown command "grants frobnicate" ' +
            '\\(list, show, create, .*; see distributary grants --help\\)\\n$',
        ),
      ],
      // a flag another subcommand takes, a file that is not there, an update without a change: refused before any
      // request
      [
        ['grants', 'list', '--name', 'x'],
        /^distributary: grants list does not take --name \(see distributary grants --help\)\n$/,
      ],
      [
        ['organizations', 'create', '--from-file', '/nonexistent/org.json'],
        /^distributary: --from-file \/nonexistent\/org.json: no such file \(see distributary organizations --help\)\n$/,
      ],
      [
        ['subscriptions', 'update', 'sub_000000000000000000000000'],
        new RegExp(
          '^distributary: subscriptions update: nothing to change ' +
            '\\(give --name, --event-type, --webhook-url, --fields, --filter or --from-file\\) .*\\n$',
        ),
      ],
      [
        ['grants', 'create', '--filter', 'region'],
        /^distributary: --filter "region": expected <field>=<value>\[,<value>...\] .*\n$/,
      ],
      [[], /^usage: distributary <command>/],
    ]
    for (const [args, expected] of cases) {
      const r = run(...args)
      expect([r.code, r.out], args.join(' ')).to.deep.equal([2, ''])
      expect(r.err, args.join(' ')).to.match(expected)
      expect(r.err, args.join(' ')).to.not.match(/\n\s+at /) // no stack trace
    }
  })
})
