/**
 * The test environment: Node's, with a temp dir of its own per test file. Every temp dir a test
 * file makes through os.tmpdir() (its own, the packages' and those of the `strata` processes it
 * starts) lands in it, and teardown, which runs after the file's last afterAll, removes it. So
 * one file's leftovers never fill the disk under the files that follow it.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const NodeEnvironment = require('jest-environment-node').TestEnvironment;

class PerFileTmpEnvironment extends NodeEnvironment {
  async setup() {
    await super.setup();
    this.outerTmp = process.env.TMPDIR;
    this.fileTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-test-'));
    process.env.TMPDIR = this.fileTmp;
    this.global.process.env.TMPDIR = this.fileTmp;
  }

  async teardown() {
    if (this.outerTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = this.outerTmp;
    try {
      fs.rmSync(this.fileTmp, { recursive: true, force: true });
    } catch (e) {
      // Something still mounted under it: say so, and leave it rather than fail the file.
      process.stderr.write(`jest.environment: left ${this.fileTmp}: ${e.message}\n`);
    }
    await super.teardown();
  }
}

module.exports = PerFileTmpEnvironment;
