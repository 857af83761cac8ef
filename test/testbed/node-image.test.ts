// The node image's package list (hack/lib/node-image.ts) against this machine's own Debian package
// database: the QEMU binaries the drivers run inside a full node's dom0 (QemuDriver's emulator,
// qemu-img for the storage drivers) come from packages the image installs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { NODE_PACKAGES } from '../../hack/lib/node-image.js';

/** The Debian package that owns a command on this machine (`dpkg -S`). */
function packageOf(command: string): string {
  const file = execFileSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' }).trim();
  const owner = execFileSync('dpkg', ['-S', file], { encoding: 'utf8' });
  return owner.slice(0, owner.indexOf(':'));
}

describe('node image: packages', () => {
  it("installs the packages of QemuDriver's qemu-system-x86_64 and of qemu-img", () => {
    for (const command of ['qemu-system-x86_64', 'qemu-img']) {
      const pkg = packageOf(command);
      assert.ok(NODE_PACKAGES.includes(pkg), `${command} comes from ${pkg}, which the node image does not install`);
    }
  });
});
