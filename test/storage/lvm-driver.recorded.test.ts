// The LVM driver against RECORDED ARGUMENT VECTORS: this kernel has no device-mapper, so the LVM2
// commands (lvs, lvcreate, lvchange, lvrename, lvremove) and the tools writing into /dev/<vg>/*
// are answered by LvmRecordingTransport, a small model of a volume group with one thin pool that
// records every argv and parses it strictly (an unknown flag or a malformed vector fails the test).
// Its block content model gives thin snapshots the copy of their origin's blocks at snapshot
// time, which is what LVM2 thin snapshots guarantee. Everything else (files of the config and
// shared volumes, the template) runs for real through a LocalTransport.

import assert from 'node:assert/strict';
import { readFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { LvmDriver } from '../../drivers/storage/lvm-driver.js';
import type { VolumeInfo } from '../../drivers/storage/types.js';
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
  private devLv(path: string): ModelLv | undefined {
    const m = new RegExp(`^/dev/${this.vg}/(.+)$`).exec(path);
    return m ? this.lvs.get(m[1]!) : undefined;
  }

  async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
    const fail = (stderr: string, code = 5): ExecResult => ({ code, stdout: '', stderr });
    const cmd = argv[0];
    const lvmCmd = ['lvs', 'lvcreate', 'lvchange', 'lvrename', 'lvremove'].includes(cmd!);
    const touchesDev = argv.some((a) => a.startsWith(`/dev/${this.vg}/`));
    if (!lvmCmd && !touchesDev) return this.real.exec(argv, opts);
    this.recorded.push([...argv]);
    switch (cmd) {
      case 'lvs': {
        const { flags, rest } = parseFlags(argv, ['--reportformat', '--units', '-o'], ['--nosuffix']);
        assert.equal(flags.get('--reportformat'), 'json');
        assert.equal(rest.length, 1);
        const row = (lv: ModelLv) => ({
          lv_name: lv.name,
          lv_attr: `${lv.isPool ? 't' : 'V'}${lv.readOnly ? 'r' : 'w'}i${lv.active ? 'a' : '-'}-tz--`,
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
        const { flags, rest } = parseFlags(argv, ['--type', '-L', '-V', '--thinpool', '-n', '-p'], ['-s', '-y']);
        const name = flags.get('-n');
        if (!name) return fail('lvcreate: -n is required here', 3);
        if (this.lvs.has(name)) return fail(`Logical Volume "${name}" already exists in volume group "${this.vg}"`);
        if (flags.get('--type') === 'thin-pool') {
          assert.deepEqual(rest, [this.vg]);
          this.lvs.set(name, { name, sizeBytes: parseBytes(flags.get('-L')!), readOnly: false, active: true, thin: false, isPool: true, blocks: new Map() });
          return ok();
        }
        if (flags.get('--type') === 'thin') {
          const pool = this.ref(flags.get('--thinpool')!);
          if (!pool?.isPool) return fail('thin pool not found');
          this.lvs.set(name, { name, sizeBytes: parseBytes(flags.get('-V')!), readOnly: false, active: true, thin: true, pool: pool.name, blocks: new Map() });
          return ok();
        }
        if (flags.has('-s')) {
          assert.ok(!flags.has('-L') && !flags.has('-V'), 'a thin snapshot takes no size');
          assert.equal(rest.length, 1);
          const origin = this.ref(rest[0]!);
          if (!origin?.thin) return fail(`origin ${rest[0]} is not a thin volume`);
          this.lvs.set(name, {
            name, sizeBytes: origin.sizeBytes, readOnly: flags.get('-p') === 'r', active: false, thin: true,
            pool: origin.pool, origin: origin.name, blocks: new Map(origin.blocks),
          });
          return ok();
        }
        return fail(`lvcreate: unsupported vector ${argv.join(' ')}`, 3);
      }
      case 'lvchange': {
        const { flags, rest } = parseFlags(argv, ['-p'], ['-ay', '-K']);
        const lv = this.ref(rest[0]!);
        if (!lv) return fail('not found');
        if (flags.get('-p') === 'r') {
          if (lv.readOnly) return fail(`Logical volume ${rest[0]} is already read only.`);
          lv.readOnly = true;
        }
        if (flags.has('-ay')) {
          if (lv.origin && !flags.has('-K')) return fail('thin snapshot has the activation skip flag: use -K');
          lv.active = true;
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
        const lv = this.ref(rest[0]!);
        if (!lv) return fail('not found');
        this.lvs.delete(lv.name);
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
  return {
    driver: new LvmDriver(t, { vg: 'sanvg', thinPool: 'pool', poolSizeBytes: 10 * 1024 * MiB }),
    vcDir,
    vcUid: '0a1b',
    template: { path: template, format: 'qcow2' },
    templateBytes: 64 * MiB,
    write: async (info, offset, byte) => {
      const lv = t.lvOf(info);
      if (!lv || !lv.active || lv.readOnly) throw new Error(`${info.path} is not writable`);
      lv.blocks.set(block(offset), byte);
    },
    holds: async (info, offset, byte) => t.lvOf(info)?.blocks.get(block(offset)) === byte,
    isReadOnly: async (info) => t.lvOf(info)?.readOnly === true,
    isSwap: async (info) => t.lvOf(info)?.swap === true,
    readConfig: (info) => readFile(info.path),
    listVolumes: async () => [
      ...[...t.lvs.keys()].filter((n) => n !== 'pool'),
      ...(await listTree(vcDir)),
    ],
    cleanup: async () => {
      await t.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('lvm driver: the recorded argument vectors', () => {
  it('made the thin pool, a thin original set read-only, and thin snapshots activated with -K', () => {
    const r = recording!.recorded.map((a) => a.join(' '));
    assert.ok(r.includes(`lvcreate --type thin-pool -L ${10 * 1024 * MiB}b -n pool sanvg`));
    assert.ok(r.some((a) => /^lvcreate --type thin -V 67108864b --thinpool sanvg\/pool -n 0a1b_vc-original\.tmp -y$/.test(a)));
    assert.ok(r.includes('lvrename sanvg 0a1b_vc-original.tmp 0a1b_vc-original'));
    assert.ok(r.includes('lvchange -p r sanvg/0a1b_vc-original'));
    assert.ok(r.includes('lvcreate -s -p rw -n 0a1b_vc-0-disk.tmp sanvg/0a1b_vc-original'));
    assert.ok(r.includes('lvchange -ay -K sanvg/0a1b_vc-0-disk.tmp'));
    assert.ok(r.includes('lvremove -f -y sanvg/0a1b_vc-original'));
    assert.equal(r.filter((a) => a === 'lvchange -p r sanvg/0a1b_vc-original').length, 1, 'read-only set once, not re-applied');
  });
});
