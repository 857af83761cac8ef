// The command line of hack/etcd-cluster (see hack/lib/etcd-cluster.ts for what each verb does).
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  EtcdClusterError, etcdClusterDown, etcdClusterUp, memberRoles, partitionMember, pauseMember, readEtcdCluster,
  startMember, stopMember,
} from './etcd-cluster.js';

const USAGE = [
  'usage: hack/etcd-cluster up [--members 3] --dir DIR      start the cluster; writes DIR/store-url',
  '       hack/etcd-cluster down --dir DIR                  remove everything (also after a crash)',
  '       hack/etcd-cluster members --dir DIR               NAME ENDPOINT leader|follower|down',
  '       hack/etcd-cluster stop|start|pause|resume|partition|heal --member NAME --dir DIR',
].join('\n');

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { members: { type: 'string' }, member: { type: 'string' }, dir: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const verb = positionals[0];
  if (values.help || !verb || positionals.length > 1 || !values.dir) {
    process.stderr.write(USAGE + '\n');
    return values.help ? 0 : 2;
  }
  const dir = resolve(process.env.VC_CALLER_CWD ?? process.cwd(), values.dir);
  const member = (): string => {
    if (!values.member) throw new EtcdClusterError(`${verb} needs --member NAME`);
    return values.member;
  };
  switch (verb) {
    case 'up': {
      if (values.members !== undefined && !/^\d+$/.test(values.members)) throw new EtcdClusterError(`--members must be a positive integer, got ${JSON.stringify(values.members)}`);
      const s = await etcdClusterUp({ dir, members: values.members === undefined ? 3 : Number(values.members), log: (l) => process.stderr.write(`${l}\n`) });
      for (const m of s.members) process.stdout.write(`${m.name}\t${m.clientUrl}\tnetns ${m.netns}\tpid ${m.pid}\n`);
      process.stdout.write(`wrote ${s.storeUrlFile} (export VCCTL_STORE="$(cat ${s.storeUrlFile})"); root password in ${s.passwordFile}\n`);
      return 0;
    }
    case 'down':
      await etcdClusterDown(dir);
      process.stdout.write(`etcd cluster in ${dir} removed\n`);
      return 0;
    case 'members':
      for (const r of await memberRoles(await readEtcdCluster(dir))) process.stdout.write(`${r.name} ${r.endpoint} ${r.role}\n`);
      return 0;
    case 'stop': await stopMember(dir, member()); break;
    case 'start': await startMember(dir, member()); break;
    case 'pause': await pauseMember(dir, member(), true); break;
    case 'resume': await pauseMember(dir, member(), false); break;
    case 'partition': await partitionMember(dir, member(), true); break;
    case 'heal': await partitionMember(dir, member(), false); break;
    default:
      process.stderr.write(`hack/etcd-cluster: unknown command ${JSON.stringify(verb)}\n${USAGE}\n`);
      return 2;
  }
  process.stdout.write(`${verb} ${values.member}: done\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`hack/etcd-cluster: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
