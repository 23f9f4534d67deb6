import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { aptConf } from './apt-conf';

test("apt reads the step's apt.conf: state under /run/strata, no recommends, dpkg options", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-aptconf-'));
  try {
    const file = path.join(dir, 'apt.conf');
    fs.writeFileSync(file, aptConf());
    // -c reads the file after the host's apt.conf.d, which would otherwise override it here.
    const dump = execFileSync('apt-config', ['-c', file, 'dump'], { encoding: 'utf8' }).split('\n');
    expect(dump).toEqual(
      expect.arrayContaining([
        'Dir::Etc::sourcelist "/run/strata/sources.list";',
        'Dir::Etc::sourceparts "/run/strata/sources.list.d";',
        'Dir::State::lists "/run/strata/lists";',
        'Dir::Cache::archives "/run/strata/archives";',
        'Dir::Cache::pkgcache "";',
        'Dir::Cache::srcpkgcache "/run/strata/cache/srcpkgcache.bin";',
        'APT::Sandbox::User "root";',
        'APT::Install-Recommends "false";',
        'Acquire::Languages:: "none";',
        'DPkg::Options:: "--force-confdef";',
        'DPkg::Options:: "--force-confold";',
        'DPkg::Options:: "--force-unsafe-io";',
        'DPkg::Use-Pty "false";',
      ]),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
