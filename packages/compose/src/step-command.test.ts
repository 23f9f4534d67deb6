import { execFileSync } from 'node:child_process';
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
    /^mkdir -p \/run\/strata\/lists\/partial .* && apt-get update -q && apt-get install -y -q --no-install-recommends /,
  );
  const args = script.slice(
    script.indexOf('--no-install-recommends ') + '--no-install-recommends '.length,
  );
  expect(words(args)).toEqual(['curl=7.88', '/run/strata/context/debs/agent_1.0_amd64.deb']);
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
      'apt-get update -q && apt-get upgrade -y -q',
    ),
  ).toBe(true);
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
    expect.stringContaining("cp -a '/run/strata/context/conf/app.conf' '/etc/acme/app.conf'"),
    `chown -R '1000:1000' "$t"`,
    'chmod -R 640 "$t"',
  ]);
});

test('instructions that make no layer have no command', () => {
  const [ins] = steps('ENV A=1\n');
  expect(() => stepCommand(ins as Instruction)).toThrow('ENV does not run');
});
