// The LVM driver against RECORDED ARGUMENT VECTORS: this kernel has no device-mapper, so the LVM2
// commands (lvs, lvcreate, lvchange, lvrename, lvremove) and the tools writing into /dev/<vg>/*
// are answered by LvmRecordingTransport, a small model of a volume group (linear LVs, thin pools,
// thin snapshots of an external origin) that records every argv and parses it strictly (an
// unknown flag or a malformed vector fails the test). The driver's node scripts (activation,
// deactivation, pool usage: LVM_SCRIPTS) are answered by their contract, the activation record
// as a real file; the snapshot script's two `lvcreate`s are checked in its text and then answered
// as the vectors they are. Every LVM command must carry the drivers' shared `--config`
// (lvm-config.ts). Its block content model gives thin snapshots the copy of their origin's blocks
// at snapshot time, which is what LVM2 thin snapshots guarantee. Everything else (files of the
// config and shared volumes, the template) runs for real through a LocalTransport. The real
// driver runs on full nodes in san-drivers.full.test.ts.

import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { LVM_CONFIG } from '../../drivers/storage/lvm-config.js';
import { LVM_SCRIPTS, LvmDriver } from '../../drivers/storage/lvm-driver.js';
import { ActiveElsewhereError, type VolumeInfo } from '../../drivers/storage/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import type { ConnectTarget, ExecOptions, ExecResult, SpawnedProcess, Transport } from '../../drivers/transport/types.js';
import { describeDriverConformance } from './driver-conformance.js';
import { listTree, makeTemplate, makeTempDir } from './storage-fixtures.js';

const MiB = 1024 * 1024;

interface ModelLv {
  name: string;
  sizeBytes: number;
  readOnly: boolean;
  active: boolean;
  thin: boolean;
  pool?: string;
  origin?: string;
  isPool?: boolean;
  /** 64 KiB block index -> byte pattern written there. */
  blocks: Map<number, number>;
  /** Thin LVs: the blocks written into them (the pool blocks they use). */
  provisioned?: Set<number>;
  swap?: boolean;
}

function parseBytes(s: string): number {
  const m = /^(\d+)b$/.exec(s);
  if (!m) throw new Error(`size "${s}" is not in bytes with the b suffix`);
  return Number(m[1]);
}

/** Parses argv against an allowed flag table: flags with values and boolean flags. */
function parseFlags(argv: readonly string[], withValue: string[], booleans: string[]): { flags: Map<string, string>; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (withValue.includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[0]}: ${a} needs a value`);
      flags.set(a, v);
    } else if (booleans.includes(a)) flags.set(a, '');
    else if (a.startsWith('-')) throw new Error(`${argv[0]}: unknown option ${a}`);
    else rest.push(a);
  }
  return { flags, rest };
}

export class LvmRecordingTransport implements Transport {
  readonly host = 'recorded-lvm';
  readonly recorded: string[][] = [];
  readonly lvs = new Map<string, ModelLv>();
  constructor(private readonly real: Transport, readonly vg: string, readonly templateBytes: number) {}

  private ref(s: string): ModelLv | undefined {
    const [vg, lv] = s.split('/');
    if (vg !== this.vg) throw new Error(`unknown volume group in ${s}`);
    return this.lvs.get(lv!);
  }
  /** LVM's device path, or a thin snapshot's own mapping (/dev/mapper/vlthin-<lv>, while its LV is active). */
  private devLv(path: string): ModelLv | undefined {
    const m = new RegExp(`^/dev/${this.vg}/(.+)$`).exec(path);
    if (m) return this.lvs.get(m[1]!);
    const d = /^\/dev\/mapper\/vlthin-(.+)$/.exec(path);
    const lv = d ? this.lvs.get(d[1]!) : undefined;
    return lv?.pool && lv.active ? lv : undefined;
  }

  async exec(full: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string, code = 5): ExecResult => ({ code, stdout: '', stderr });
    if (full[0] === 'sh' && full[1] === '-c' && Object.values(LVM_SCRIPTS).includes(full[2]!)) {
      this.recorded.push([...full]);
      return this.script(full[2]!, full.slice(4), opts);
    }
    const cmd = full[0];
    const lvmCmd = ['vgs', 'lvs', 'lvcreate', 'lvchange', 'lvrename', 'lvremove'].includes(cmd!);
    const touchesDev = full.some((a) => a.startsWith(`/dev/${this.vg}/`));
    if (!lvmCmd && !touchesDev) return this.real.exec(full, opts);
    this.recorded.push([...full]);
    // every LVM command carries the shared settings first (one thin snapshot may add its thin_check skip)
    if (lvmCmd) {
      assert.equal(full[1], '--config', `${full.join(' ')}: no --config`);
      assert.ok(full[2] === LVM_CONFIG || full[2] === `${LVM_CONFIG} global/thin_check_executable=""`, `${full.join(' ')}: not the drivers' LVM_CONFIG`);
    }
    const argv = lvmCmd ? [full[0]!, ...full.slice(3)] : full;
    switch (cmd) {
      case 'vgs':
        assert.equal(argv.length, 2);
        return argv[1] === this.vg ? ok() : fail(`Volume group "${argv[1]}" not found`);
      case 'lvs': {
        const { flags, rest } = parseFlags(argv, ['--reportformat', '--units', '-o'], ['--nosuffix']);
        assert.equal(flags.get('--reportformat'), 'json');
        assert.equal(rest.length, 1);
        const row = (lv: ModelLv) => ({
          lv_name: lv.name,
          lv_attr: `${lv.isPool ? 't' : lv.thin ? 'V' : [...this.lvs.values()].some((x) => x.origin === lv.name) ? 'o' : '-'}${lv.readOnly ? 'r' : 'w'}i-${lv.active ? 'a' : '-'}-tz--`,
          lv_size: String(lv.sizeBytes),
          data_percent: (lv.isPool ? 0 : Math.min(100, (lv.blocks.size * 64 * 1024 * 100) / lv.sizeBytes)).toFixed(2),
          origin: lv.origin ?? '', pool_lv: lv.pool ?? '',
        });
        if (rest[0] === this.vg) return ok(JSON.stringify({ report: [{ lv: [...this.lvs.values()].map(row) }] }));
        const lv = this.ref(rest[0]!);
        if (!lv) return fail(`Failed to find logical volume "${rest[0]}"`);
        return ok(JSON.stringify({ report: [{ lv: [row(lv)] }] }));
      }
      case 'lvcreate': {
        const { flags, rest } = parseFlags(argv, ['--type', '-L', '--thinpool', '-n'], ['-s', '-y', '-an', '-Wy', '-Zy']);
        const name = flags.get('-n');
        if (!name) return fail('lvcreate: -n is required here', 3);
        if (this.lvs.has(name)) return fail(`Logical Volume "${name}" already exists in volume group "${this.vg}"`);
        const active = !flags.has('-an');
        if (flags.get('--type') === 'thin-pool') {
          assert.deepEqual(rest, [this.vg]);
          this.lvs.set(name, { name, sizeBytes: parseBytes(flags.get('-L')!), readOnly: false, active, thin: false, isPool: true, blocks: new Map() });
          return ok();
        }
        if (flags.has('-s')) {
          // a thin snapshot of an external origin: read-only, outside any pool
          assert.ok(!flags.has('-L'), 'a thin snapshot takes no size');
          assert.equal(rest.length, 1);
          const pool = this.ref(flags.get('--thinpool') ?? '');
          if (!pool?.isPool) return fail('thin pool not found');
          const origin = this.ref(rest[0]!);
          if (!origin) return fail(`origin ${rest[0]} not found`);
          if (origin.thin || origin.isPool || !origin.readOnly) return fail(`external origin ${rest[0]} must be a read-only LV outside a pool`);
          if (origin.active) return fail('Cannot use active LV for the external origin.');
          this.lvs.set(name, {
            name, sizeBytes: origin.sizeBytes, readOnly: false, active, thin: true,
            pool: pool.name, origin: origin.name, blocks: new Map(origin.blocks), provisioned: new Set(),
          });
          return ok();
        }
        if (flags.has('-L') && !flags.has('--type') && rest.length === 1 && rest[0] === this.vg) {
          assert.ok(flags.has('-Wy') && flags.has('-Zy'), 'a linear LV is made with its signatures wiped');
          this.lvs.set(name, { name, sizeBytes: parseBytes(flags.get('-L')!), readOnly: false, active, thin: false, blocks: new Map() });
          return ok();
        }
        return fail(`lvcreate: unsupported vector ${argv.join(' ')}`, 3);
      }
      case 'lvchange': {
        const { flags, rest } = parseFlags(argv, ['-p'], ['-ay', '-an', '-K']);
        if (rest.length === 0) return fail('lvchange: no LV', 3);
        for (const r of rest) {
          const lv = this.ref(r);
          if (!lv) return fail(`Failed to find logical volume "${r}"`);
          if (flags.get('-p') === 'r') {
            if (lv.readOnly) return fail(`Logical volume ${r} is already read only.`);
            lv.readOnly = true;
          }
          if (flags.has('-ay')) lv.active = true;
          if (flags.has('-an')) lv.active = false;
        }
        return ok();
      }
      case 'lvrename': {
        assert.equal(argv.length, 4);
        assert.equal(argv[1], this.vg);
        const lv = this.lvs.get(argv[2]!);
        if (!lv) return fail('not found');
        if (this.lvs.has(argv[3]!)) return fail('exists');
        this.lvs.delete(lv.name);
        lv.name = argv[3]!;
        this.lvs.set(lv.name, lv);
        for (const x of this.lvs.values()) if (x.origin === argv[2]) x.origin = lv.name;
        return ok();
      }
      case 'lvremove': {
        const { rest } = parseFlags(argv, [], ['-f', '-y']);
        if (rest.length === 0) return fail('lvremove: no LV', 3);
        for (const r of rest) {
          const lv = this.ref(r);
          if (!lv) return fail(`Failed to find logical volume "${r}"`);
          // as LVM: a pool goes with its thin LVs, an external origin with its snapshots
          for (const x of [...this.lvs.values()]) if (x.pool === lv.name || x.origin === lv.name) this.lvs.delete(x.name);
          this.lvs.delete(lv.name);
        }
        return ok();
      }
      case 'qemu-img': {
        // qemu-img convert -n -f FMT -O raw SRC /dev/vg/lv: the template's content (0x11 everywhere).
        assert.deepEqual(argv.slice(0, 3), ['qemu-img', 'convert', '-n']);
        const lv = this.devLv(argv[argv.length - 1]!);
        if (!lv || !lv.active || lv.readOnly) return fail('cannot open target for writing', 1);
        for (let b = 0; b < this.templateBytes / (64 * 1024); b++) lv.blocks.set(b, 0x11);
        return ok();
      }
      case 'mkswap': {
        const lv = this.devLv(argv[argv.length - 1]!);
        if (!lv) return fail('no such device', 1);
        lv.swap = true;
        lv.blocks.set(0, 0);
        return ok();
      }
      default:
        return fail(`the recording transport does not model ${argv.join(' ')}`, 127);
    }
  }

  /** The driver's node scripts, by their contract (lvm-driver.ts), the record as a real file. */
  private async script(script: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    const [vg, ...rest] = args;
    assert.equal(vg, this.vg);
    const recordOf = async (rec: string): Promise<string> => {
      const r = await this.real.exec(['cat', rec], opts);
      return r.code === 0 ? r.stdout.trim() : '';
    };
    if (script === LVM_SCRIPTS.snapshot) {
      // the script's commands, as in its text, then run as the vectors they are
      const [pool, lv, origin, bytes, mkpool, dir] = rest as [string, string, string, string, string, string];
      assert.match(script, /lvcreate --config "\$c" -y -an --type thin-pool -L "\$\{bytes\}b" -n "\$pool" "\$vg" /);
      assert.match(script, /lvcreate --config "\$c" -y -an -s --thinpool "\$vg\/\$pool" -n "\$lv" "\$vg\/\$origin" /);
      assert.match(script, /c="\$c global\/thin_check_executable=\\"\\""/);
      await this.real.exec(['mkdir', '-p', dir], opts);
      let c = LVM_CONFIG;
      if (mkpool === '1') {
        const r = await this.exec(['lvcreate', '--config', c, '-y', '-an', '--type', 'thin-pool', '-L', `${bytes}b`, '-n', pool, vg!], opts);
        if (r.code !== 0) return r;
        c = `${c} global/thin_check_executable=""`;
      } else assert.equal(mkpool, '0');
      return this.exec(['lvcreate', '--config', c, '-y', '-an', '-s', '--thinpool', `${vg}/${pool}`, '-n', lv, `${vg}/${origin}`], opts);
    }
    if (script === LVM_SCRIPTS.poolUsage) {
      const used = (pool: string): number => [...this.lvs.values()].filter((x) => x.pool === pool).reduce((n, x) => n + (x.provisioned?.size ?? 0) * 64 * 1024, 0);
      return { code: 0, stdout: rest.map((p) => `${this.lvs.has(p) ? used(p) : 0}\n`).join(''), stderr: '' };
    }
    const [name, dm, rec, me, take] = rest as [string, string, string, string, string | undefined];
    assert.equal(dm, `vlthin-${name}`, 'a snapshot\'s own mapping is named vlthin-<its LV>');
    const lv = this.lvs.get(name);
    if (script === LVM_SCRIPTS.deactivate) {
      if (lv) lv.active = false;
      if ((await recordOf(rec)) === me) await this.real.exec(['rm', '-f', rec], opts);
      return { code: 0, stdout: '', stderr: '' };
    }
    if (!lv) return { code: 3, stdout: '', stderr: `${vg}/${name} does not exist` };
    if (lv.pool) {
      const holder = await recordOf(rec);
      if (holder && holder !== me && take !== '1') return { code: 4, stdout: '', stderr: `it is active on ${holder}` };
      lv.active = true;
      await this.real.exec(['sh', '-c', 'mkdir -p "${1%/*}" && echo "$2" > "$1"', 'sh', rec, me], opts);
      return { code: 0, stdout: `/dev/mapper/${dm}\n`, stderr: '' };
    }
    lv.active = true;
    return { code: 0, stdout: `/dev/${vg}/${name}\n`, stderr: '' };
  }

  spawn(argv: readonly string[], opts?: Omit<ExecOptions, 'stdin'>): SpawnedProcess {
    return this.real.spawn(argv, opts);
  }
  connect(target: ConnectTarget): Promise<Duplex> {
    return this.real.connect(target);
  }
  writeFile(path: string, data: string | Buffer, mode?: number): Promise<void> {
    return this.real.writeFile(path, data, mode);
  }
  close(): Promise<void> {
    return this.real.close();
  }

  /** The model's view of a device path, for content checks. */
  lvOf(info: VolumeInfo): ModelLv | undefined {
    return this.devLv(info.path);
  }
}

let recording: LvmRecordingTransport | undefined;

describeDriverConformance('lvm (against recorded argument vectors, no device-mapper here)', async () => {
  const root = await makeTempDir('vl-lvm-');
  await mkdir(join(root, 'templates'));
  const template = join(root, 'templates', 'base.qcow2');
  await makeTemplate(template, 64 * MiB, 'qcow2');
  const t = new LvmRecordingTransport(new LocalTransport({ host: 'storage' }), 'sanvg', 64 * MiB);
  recording = t;
  const vcDir = join(root, 'vcs', 'default', 'vc-0a1b');
  const block = (offset: number): number => Math.floor(offset / (64 * 1024));
  const driver = new LvmDriver(t, { vg: 'sanvg' });
  // a volume is mapped (the driver's activation, here on its own node) before it is read or written
  const mapped = async (info: VolumeInfo): Promise<NonNullable<ReturnType<typeof t.lvOf>>> => {
    let lv = t.lvOf(info);
    if (!lv?.active) lv = t.lvOf(await driver.activate({ vcDir, vcUid: '0a1b', name: info.path.replace(/^.*0a1b_/, '') }, t));
    if (!lv?.active) throw new Error(`${info.path} is not mapped`);
    return lv;
  };
  return {
    driver,
    vcDir,
    vcUid: '0a1b',
    template: { path: template, format: 'qcow2' },
    templateBytes: 64 * MiB,
    write: async (info, offset, byte) => {
      const lv = await mapped(info);
      if (lv.readOnly) throw new Error(`${info.path} is read-only`);
      lv.blocks.set(block(offset), byte);
      lv.provisioned?.add(block(offset));
    },
    holds: async (info, offset, byte) => (await mapped(info)).blocks.get(block(offset)) === byte,
    isReadOnly: async (info) => t.lvOf(info)?.readOnly === true,
    isSwap: async (info) => t.lvOf(info)?.swap === true,
    readConfig: (info) => readFile(info.path),
    listVolumes: async () => [...t.lvs.keys(), ...(await listTree(vcDir))],
    cleanup: async () => {
      await t.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('lvm driver: the recorded argument vectors', () => {
  it('made a linear original set read-only once, and per snapshot a pool and a thin snapshot of that external origin, all inactive', () => {
    const r = recording!.recorded.map((a) => a.join(' '));
    const L = (cmd: string, rest: string): string => `${cmd} --config ${LVM_CONFIG} ${rest}`;
    assert.ok(r.includes(L('lvcreate', '-y -Wy -Zy -L 67108864b -n 0a1b_vc-original.tmp sanvg')));
    assert.ok(r.includes(L('lvchange', '-an sanvg/0a1b_vc-original.tmp')), 'the original is unmapped on the storage node once filled');
    assert.ok(r.includes(L('lvrename', 'sanvg 0a1b_vc-original.tmp 0a1b_vc-original')));
    assert.equal(r.filter((a) => a === L('lvchange', '-p r sanvg/0a1b_vc-original')).length, 1, 'read-only set once, not re-applied');
    assert.ok(r.includes(L('lvcreate', '-y -an --type thin-pool -L 67108864b -n 0a1b_vc-0-disk.pool sanvg')), 'a pool per snapshot, as large as the original');
    // the thin snapshot under its final name (one atomic lvcreate: no temporary, no rename), the
    // new pool's thin_check skipped; both in one command on the node
    assert.ok(r.includes(`lvcreate --config ${LVM_CONFIG} global/thin_check_executable="" -y -an -s --thinpool sanvg/0a1b_vc-0-disk.pool -n 0a1b_vc-0-disk sanvg/0a1b_vc-original`));
    const scripts = recording!.recorded.filter((a) => a[2] === LVM_SCRIPTS.snapshot).map((a) => a.slice(4).join(' '));
    assert.ok(scripts.some((a) => a.startsWith('sanvg 0a1b_vc-0-disk.pool 0a1b_vc-0-disk 0a1b_vc-original 67108864 1 ')), 'pool and snapshot in one command on the node');
    assert.ok(r.includes(L('lvcreate', '-y -Wy -Zy -L 67108864b -n 0a1b_vc-0-swap.tmp sanvg')), 'swap is a linear LV');
    assert.ok(!r.some((a) => / -ay /.test(a) && a.startsWith('lvchange')), 'the storage node maps nothing itself: activation is per node');
    assert.ok(r.includes(L('lvremove', '-f -y sanvg/0a1b_vc-original')));
  });
});

/** A model VG `sanvg` on the storage node with a 4 MiB template, for the small cases below. */
async function smallVg(prefix: string) {
  const root = await makeTempDir(prefix);
  await mkdir(join(root, 'templates'));
  const template = join(root, 'templates', 'base.qcow2');
  await makeTemplate(template, 4 * MiB, 'qcow2');
  const t = new LvmRecordingTransport(new LocalTransport({ host: 'storage' }), 'sanvg', 4 * MiB);
  const d = new LvmDriver(t, { vg: 'sanvg' });
  const key = (name: string) => ({ vcDir: join(root, 'vc'), vcUid: 'u1', name });
  return { root, t, d, key, template };
}

describe('lvm driver: the usage read maps nothing (it raced the runtime\'s activation on the storage node)', () => {
  it('reads the pools\' metadata superblocks from the physical volume: no LVM activation in the read, in one script for all pools', async () => {
    const { root, t, d, key, template } = await smallVg('vl-lvm-usage-');
    try {
      await d.createOriginal(key('vc-original'), { path: template, format: 'qcow2' });
      await d.snapshotAll(key('vc-original'), [key('vc-0-disk'), key('vc-1-disk')]);
      // the VM of vc-0 runs on this (the storage) node: its thin LV and pool are mapped here
      await d.activate(key('vc-0-disk'), t);
      const from = t.recorded.length;
      assert.deepEqual(await d.usageAll([key('vc-0-disk'), key('vc-1-disk'), key('vc-original')]), [0, 0, 4 * MiB]);
      const read = t.recorded.slice(from);
      assert.deepEqual(read.map((a) => a[0]), ['lvs', 'sh'], 'one lvs of the VG and one script for every pool');
      assert.deepEqual(read[1]!.slice(4), ['sanvg', 'u1_vc-0-disk.pool', 'u1_vc-1-disk.pool']);
      // LVM refuses `lvchange -ay -K` of a thin LV while its pool's _tmeta is mapped on its own,
      // which the read did for a moment: the read may map nothing at all
      assert.doesNotMatch(LVM_SCRIPTS.poolUsage, /lvchange|vgchange|dmsetup|-ay/, 'the usage read activates nothing');
      assert.match(LVM_SCRIPTS.poolUsage, /iflag=direct/, 'it reads the PV with O_DIRECT (what other nodes wrote)');
      assert.equal(t.lvs.get('u1_vc-0-disk')!.active, true, 'the activation here is untouched');
      await t.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('activation on the storage node waits for, then unmaps, a pool component mapped on its own, and fails on any other LVM refusal', () => {
    // the node script's retry is for LVM's message about a component only (its text is LVM's)
    assert.match(LVM_SCRIPTS.activate, /prohibited while.*_t\*" is active"/);
    assert.match(LVM_SCRIPTS.activate, /lvchange -an --config "\$ro" "\$vg\/\$\{pool\}_tmeta" "\$vg\/\$\{pool\}_tdata"/);
  });
});

describe('lvm driver: refusals (recorded model)', () => {
  it('removing an original that snapshots still use is refused and leaves both; a snapshot active on another node is neither reset nor removed', async () => {
    const { root, t, d, key, template } = await smallVg('vl-lvm-refuse-');
    try {
      await d.createOriginal(key('vc-original'), { path: template, format: 'qcow2' });
      await d.snapshot(key('vc-original'), key('vc-0-disk'));
      await assert.rejects(d.remove(key('vc-original')), /thin snapshots still use it/);
      assert.deepEqual(await d.existsAll([key('vc-original'), key('vc-0-disk')]), [true, true]);
      // blade2 maps it (its record names blade2); the storage node may not reset or remove it
      await writeFile(join(root, 'vc', '.vc-0-disk.active'), 'blade2\n');
      await assert.rejects(d.reset(key('vc-original'), key('vc-0-disk')), ActiveElsewhereError);
      await assert.rejects(d.remove(key('vc-0-disk')), ActiveElsewhereError);
      await assert.rejects(d.activate(key('vc-0-disk'), t), ActiveElsewhereError);
      assert.equal(await d.exists(key('vc-0-disk')), true);
      assert.equal(await d.activeOn(key('vc-0-disk')), 'blade2');
      await t.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
