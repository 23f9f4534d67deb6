import * as path from 'node:path';
import { InvalidArgumentError } from '@strata/oci';
import { Instruction } from './stratafile';

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command a layer step runs in its chroot: a pure function of the instruction. */
export function stepCommand(ins: Instruction): string[] {
  const aptPrep = 'mkdir -p /run/strata/lists/partial /run/strata/archives/partial';
  switch (ins.kind) {
    case 'INSTALL': {
      const pkgs = [
        ...ins.packages.map((p) => (p.version ? `${p.name}=${p.version}` : p.name)),
        ...ins.debs.map((d) => `/run/strata/context/${d.replace(/^\.\//, '')}`),
      ];
      const rec = ins.recommends ? '--install-recommends' : '--no-install-recommends';
      return [
        '/bin/sh',
        '-c',
        `${aptPrep} && apt-get update -q && apt-get install -y -q ${rec} ${pkgs.map(shellQuote).join(' ')}`,
      ];
    }
    case 'UPGRADE': {
      const upgrade = ins.packages.length
        ? `apt-get install -y -q --only-upgrade ${ins.packages.map(shellQuote).join(' ')}`
        : 'apt-get upgrade -y -q';
      return ['/bin/sh', '-c', `${aptPrep} && apt-get update -q && ${upgrade}`];
    }
    case 'REMOVE': {
      const pkgs = ins.packages.map(shellQuote).join(' ');
      return [
        '/bin/sh',
        '-c',
        [
          `dpkg-query -L ${pkgs} 2>/dev/null | sort -u > /run/strata/out/owned`,
          `apt-get purge -y -q --autoremove ${pkgs}`,
          'rc=$?',
          'while IFS= read -r f; do if [ -e "$f" ] && [ ! -d "$f" ]; then printf "%s\\n" "$f"; fi; done < /run/strata/out/owned > /run/strata/out/survivors',
          'exit $rc',
        ].join('\n'),
      ];
    }
    case 'RUN':
      return typeof ins.command === 'string' ? ['/bin/sh', '-c', ins.command] : ins.command;
    case 'COPY': {
      const dest = ins.dest.startsWith('/') ? ins.dest : `/${ins.dest}`;
      const lines = ['set -e'];
      const many = ins.sources.length > 1 || dest.endsWith('/');
      if (many) lines.push(`mkdir -p ${shellQuote(dest)}`);
      for (const src of ins.sources) {
        const from = `/run/strata/context/${src.replace(/^\.\//, '')}`;
        const to = many ? `${dest.replace(/\/$/, '')}/${path.posix.basename(src)}` : dest;
        lines.push(
          `if [ -d ${shellQuote(from)} ]; then mkdir -p ${shellQuote(many ? dest : to)}; cp -a ${shellQuote(from)}/. ${shellQuote(many ? dest : to)}/; t=${shellQuote(many ? dest : to)}; else mkdir -p "$(dirname ${shellQuote(to)})"; cp -a ${shellQuote(from)} ${shellQuote(to)}; t=${shellQuote(to)}; fi`,
        );
        if (ins.chown) lines.push(`chown -R ${shellQuote(ins.chown)} "$t"`);
        if (ins.chmod !== undefined) lines.push(`chmod -R ${ins.chmod.toString(8)} "$t"`);
      }
      return ['/bin/sh', '-c', lines.join('\n')];
    }
    default:
      throw new InvalidArgumentError(`${ins.kind} does not run`);
  }
}
