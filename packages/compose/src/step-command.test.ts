import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Instruction, parseStratafile } from './stratafile';
import { stepCommand } from './step-command';

function steps(text: string): Instruction[] {
  return parseStratafile(`FROM base:1\n${text}`, 'Stratafile', {}).stages[0]?.steps ?? [];
}

/** What sh makes of a `/bin/sh -c SCRIPT` command's quoted words, without running the step. */
function words(script: string): string[] {
  return JSON.parse(
    execFileSync('/bin/sh', ['-c', `set -- ${script}; printf '%s\\n' "$@" | jq -R . | jq -s .`], {
      encoding: 'utf8',
    }),
  ) as string[];
}

test('INSTALL pins versions, points local .debs into the context, quotes names, and asks for recommends only when told', () => {
  const [ins, rec] = steps(
    'INSTALL curl=7.88 ./debs/agent_1.0_amd64.deb\nINSTALL --recommends less\n',
  );
  const cmd = stepCommand(ins as Instruction);
  expect(cmd.slice(0, 2)).toEqual(['/bin/sh', '-c']);
  const script = cmd[2] as string;
  expect(script).toMatch(
    /\nmkdir -p \/run\/strata\/lists\/partial .* && strata_update && apt-get install -y -q --no-install-recommends /,
  );
  const args = script.slice(
    script.indexOf('--no-install-recommends ') + '--no-install-recommends '.length,
  );
  expect(words(args)).toEqual(['curl=7.88', '/run/strata/context/debs/agent_1.0_amd64.deb']);
  // What the .debs resolved to in the context (a symlink followed, a glob expanded) is installed.
  const resolved = stepCommand(ins as Instruction, [
    { written: './debs/agent_1.0_amd64.deb', path: 'pool/agent_1.0_amd64.deb' },
  ])[2] as string;
  expect(words(resolved.slice(resolved.indexOf('--no-install-recommends ') + 24))).toEqual([
    'curl=7.88',
    '/run/strata/context/pool/agent_1.0_amd64.deb',
  ]);
  expect(stepCommand(rec as Instruction)[2]).toMatch(
    /apt-get install -y -q --install-recommends 'less'$/,
  );
});

test('UPGRADE with and without packages', () => {
  const [some, all] = steps('UPGRADE openssl\nUPGRADE\n');
  expect(
    (stepCommand(some as Instruction)[2] as string).endsWith(
      "apt-get install -y -q --only-upgrade 'openssl'",
    ),
  ).toBe(true);
  expect(
    (stepCommand(all as Instruction)[2] as string).endsWith(
      'strata_update && apt-get upgrade -y -q',
    ),
  ).toBe(true);
});

test('apt-get update runs unless the kept lists hold the staged mirror state under the same apt configuration', () => {
  const [ins] = steps('INSTALL curl\n');
  const script = stepCommand(ins as Instruction)[2] as string;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-update-'));
  try {
    // The step's /run/strata, and apt-get and apt-config stubs that log what ran.
    const run = path.join(dir, 'run');
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(path.join(run, 'lists'), { recursive: true });
    fs.mkdirSync(bin);
    const log = path.join(dir, 'log');
    const release = 'Date: Sat, 10 May 2025 08:47:33 UTC\n';
    fs.writeFileSync(path.join(dir, 'release'), release);
    fs.writeFileSync(path.join(dir, 'config'), 'APT::Architecture "amd64";\n');
    fs.writeFileSync(
      path.join(bin, 'apt-get'),
      `#!/bin/sh\necho "apt-get $1" >> ${log}\n` +
        `[ "$1" = update ] && cp ${dir}/release ${run}/lists/deb.example_dists_x_InRelease\nexit 0\n`,
    );
    fs.writeFileSync(path.join(bin, 'apt-config'), `#!/bin/sh\ncat ${dir}/config\n`);
    fs.chmodSync(path.join(bin, 'apt-get'), 0o755);
    fs.chmodSync(path.join(bin, 'apt-config'), 0o755);
    const hex = (t: string): string => createHash('sha256').update(t).digest('hex');
    const stage = (releases: string[]): void =>
      fs.writeFileSync(path.join(run, 'apt-index'), ['sha256:feed', ...releases].join('\n') + '\n');
    const step = (): string[] => {
      fs.writeFileSync(log, '');
      execFileSync('/bin/sh', ['-c', script.split('/run/strata').join(run)], {
        env: { PATH: `${bin}:/usr/bin:/bin` },
      });
      return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    };

    stage([hex(release)]);
    expect(step()).toEqual(['apt-get update', 'apt-get install']);
    expect(step()).toEqual(['apt-get install']); // same mirror state: no update
    fs.writeFileSync(path.join(dir, 'config'), 'APT::Architectures { "amd64"; "arm64"; };\n');
    expect(step()).toEqual(['apt-get update', 'apt-get install']); // apt wants other indices
    expect(step()).toEqual(['apt-get install']);
    stage([hex('Date: Sun, 11 May 2025 00:00:00 UTC\n')]); // the mirror moved
    expect(step()).toEqual(['apt-get update', 'apt-get install']);
    // An update that does not reach the staged state leaves no marker behind.
    expect(fs.existsSync(path.join(run, 'lists', '.strata-index'))).toBe(false);
    expect(step()).toEqual(['apt-get update', 'apt-get install']);
    fs.rmSync(path.join(run, 'apt-index')); // nothing staged (a pinned INSTALL): always update
    expect(step()).toEqual(['apt-get update', 'apt-get install']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('REMOVE purges with autoremove and lists the files the packages owned that survive', () => {
  const [ins] = steps('REMOVE tzdata less\n');
  const script = stepCommand(ins as Instruction)[2] as string;
  expect(script).toContain("dpkg-query -L 'tzdata' 'less'");
  expect(script).toContain("apt-get purge -y -q --autoremove 'tzdata' 'less'");
  expect(script).toContain('> /run/strata/out/survivors');
  expect(script.endsWith('exit $rc')).toBe(true);
});

test('RUN in shell form goes through sh; the JSON form is exact', () => {
  const [shell, exec] = steps('RUN echo "a b" > /etc/x\nRUN ["/usr/bin/env", "a b"]\n');
  expect(stepCommand(shell as Instruction)).toEqual(['/bin/sh', '-c', 'echo "a b" > /etc/x']);
  expect(stepCommand(exec as Instruction)).toEqual(['/usr/bin/env', 'a b']);
});

test('COPY copies from the context, then chowns and chmods what it copied', () => {
  const [ins] = steps('COPY --chown=1000:1000 --chmod=0640 conf/app.conf /etc/acme/app.conf\n');
  const script = stepCommand(ins as Instruction)[2] as string;
  expect(script.split('\n')).toEqual([
    'set -e',
    expect.stringContaining('strata_dir() {'),
    expect.stringContaining(
      "t=$(strata_dir '/etc/acme')/'app.conf'; cp -a '/run/strata/context/conf/app.conf' \"$t\"",
    ),
    `chown -R '1000:1000' "$t"`,
    'chmod -R 640 "$t"',
  ]);
});

test("COPY --chown with a user alone chowns to the user and a group of the user's id", () => {
  const [ins] = steps('COPY --chown=daemon conf/app.conf /etc/acme/app.conf\n');
  const script = stepCommand(ins as Instruction)[2] as string;
  expect(script.split('\n').slice(3)).toEqual([
    "case 'daemon' in *[!0-9]*) g=$(id -u -- 'daemon' 2>/dev/null || true) ;; *) g='daemon' ;; esac",
    `chown -R 'daemon'\${g:+:"$g"} "$t"`,
  ]);
});

test("COPY's here-documents are copied from their files, after the context's sources, root's unless --chown", () => {
  const [ins, chmod] = steps(
    'COPY <<a.conf conf/x <<b.conf /etc/app/\n1\na.conf\n2\nb.conf\nCOPY --chmod=0600 <<EOF /etc/s\ns\nEOF\n',
  );
  const script = stepCommand(ins as Instruction)[2] as string;
  expect(script.split('\n').slice(2)).toEqual([
    expect.stringContaining('cp -a \'/run/strata/context/conf/x\' "$t"'),
    `t=$(strata_dir '/etc/app')/'a.conf'; cp -a '/run/strata/heredocs/0' "$t"`,
    'chown 0:0 "$t"',
    `t=$(strata_dir '/etc/app')/'b.conf'; cp -a '/run/strata/heredocs/1' "$t"`,
    'chown 0:0 "$t"',
  ]);
  expect((stepCommand(chmod as Instruction)[2] as string).split('\n').slice(2)).toEqual([
    `t=$(strata_dir '/etc')/'s'; cp -a '/run/strata/heredocs/0' "$t"`,
    'chown 0:0 "$t"',
    'chmod -R 600 "$t"',
  ]);
  const [owned] = steps('COPY --chown=1:2 <<EOF /etc/s\ns\nEOF\n');
  expect((stepCommand(owned as Instruction)[2] as string).split('\n').slice(3)).toEqual([
    `chown -R '1:2' "$t"`,
  ]);
});

test('instructions that make no layer have no command', () => {
  const [ins] = steps('ENV A=1\n');
  expect(() => stepCommand(ins as Instruction)).toThrow('ENV does not run');
});
