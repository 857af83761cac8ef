// The ADR 0002 config disk, read back by the real readers: GNU tar and busybox tar (the guest's).

import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildConfigDisk, CONFIG_DISK_BYTES, renderConfigEnv } from '../../reconcilers/storage/config-disk.js';
import { makeTempDir, sh, shOk } from './storage-fixtures.js';

describe('first-boot config disk (ADR 0002)', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('vl-cfg-');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const input = {
    vcName: 'stripes', namespace: 'default', nodeName: 'stripes-1', index: 1, ip: '10.10.1.3',
    subnet: '10.10.1.0/24', gateway: '10.10.1.1', peers: ['10.10.1.2', '10.10.1.3'], hasShared: true,
    firstBootScript: "echo 'hello' > /tmp/it\n",
  };

  it('is 1 MiB, of which only the archive is held (the driver writes the zeros), and busybox tar extracts vc/config.env and vc/firstboot.sh', async () => {
    const { bytes, sizeBytes } = buildConfigDisk(input);
    assert.equal(sizeBytes, CONFIG_DISK_BYTES);
    // headers, contents and the two end blocks: not 1 MiB of zeros per disk (hack/bench-scale, session 13)
    assert.ok(bytes.length <= 8 * 512, `${bytes.length} bytes held`);
    assert.ok(bytes.subarray(-1024).every((b) => b === 0), 'the archive ends with two zero blocks');
    const disk = join(dir, 'config.img');
    // what the driver writes: the bytes, then zeros up to sizeBytes
    await writeFile(disk, Buffer.concat([bytes, Buffer.alloc(sizeBytes - bytes.length)]));
    assert.equal((await readFile(disk)).length, CONFIG_DISK_BYTES);
    const out = join(dir, 'bb');
    await mkdir(out);
    await shOk(['busybox', 'tar', '-xf', disk, '-C', out]);
    assert.equal(await readFile(join(out, 'vc/firstboot.sh'), 'utf8'), input.firstBootScript);
    const list = await shOk(['tar', '-tvf', disk]);
    assert.match(list, /vc\/config\.env/);
  });

  it('config.env sources in sh with every ADR variable, quotes intact', async () => {
    const { bytes } = buildConfigDisk({ ...input, vcName: "it's" });
    const disk = join(dir, 'c2.img');
    await writeFile(disk, bytes);
    const out = join(dir, 'gnu');
    await mkdir(out);
    await shOk(['tar', '-xf', disk, '-C', out]);
    const script = '. "$1"; printf "%s|" "$VC_NAME" "$VC_NODE_NAME" "$VC_NODE_INDEX" "$VC_NODE_IP" "$VC_SUBNET" "$VC_PREFIX" "$VC_GATEWAY" "$VC_PEERS" "$VC_HOSTNAME" "$VC_SWAP_DEVICE" "$VC_SHARED_MOUNT" "$VC_SHARED_TAG" "$VC_NAMESPACE"; test -n "$VC_CONFIG_REVISION"';
    const r = await sh(['sh', '-c', script, 'sh', join(out, 'vc/config.env')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "it's|stripes-1|1|10.10.1.3|10.10.1.0/24|24|10.10.1.1|10.10.1.2 10.10.1.3|stripes-1|/dev/vdb|/shared|vcshared|default|");
  });

  it('is deterministic, and its revision changes with the content', () => {
    const a = buildConfigDisk(input);
    const b = buildConfigDisk(input);
    assert.ok(a.bytes.equals(b.bytes));
    const c = buildConfigDisk({ ...input, firstBootScript: 'echo other' });
    assert.notEqual(a.revision, c.revision);
    assert.equal(buildConfigDisk({ ...input, hasShared: false }).env.includes("VC_SHARED_MOUNT=''"), true);
  });

  it('names the gateway NFS export for an nfs VC, and nothing new for the others', async () => {
    const nfs = buildConfigDisk({ ...input, namespace: 'team-a', sharedNfs: true });
    const disk = join(dir, 'nfs.img');
    await writeFile(disk, nfs.bytes);
    const out = join(dir, 'nfs');
    await mkdir(out);
    await shOk(['busybox', 'tar', '-xf', disk, '-C', out]);
    const r = await sh(['sh', '-c', '. "$1"; printf "%s|%s" "$VC_SHARED_NFS" "$VC_SHARED_MOUNT"', 'sh', join(out, 'vc/config.env')]);
    assert.equal(r.stdout, '10.10.1.1:/vc/team-a/stripes|/shared');
    assert.notEqual(nfs.revision, buildConfigDisk({ ...input, namespace: 'team-a' }).revision);
    // 9p (or no) shared storage: byte for byte the disk it was before the variable existed.
    assert.ok(buildConfigDisk({ ...input, sharedNfs: false }).bytes.equals(buildConfigDisk(input).bytes));
    assert.doesNotMatch(buildConfigDisk(input).env, /VC_SHARED_NFS/);
    assert.doesNotMatch(buildConfigDisk({ ...input, hasShared: false, sharedNfs: true }).env, /VC_SHARED_NFS/);
  });

  it('refuses a first-boot script that does not fit the disk', () => {
    assert.throws(() => buildConfigDisk({ ...input, firstBootScript: 'x'.repeat(CONFIG_DISK_BYTES) }), /does not fit/);
  });

  it('renders quotes shell-safely', () => {
    assert.equal(renderConfigEnv({ A: "a'b" }), "A='a'\\''b'\n");
  });
});
