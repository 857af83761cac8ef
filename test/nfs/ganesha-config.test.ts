import assert from 'node:assert/strict';
import { exportIds, renderGaneshaConfig } from '../../drivers/nfs/ganesha-config.js';

describe('renderGaneshaConfig', () => {
  const alpha = { pseudo: '/vc/default/alpha', path: '/srv/vl/default/alpha-shared', clients: '10.200.0.0/24' };
  const beta = { pseudo: '/vc/lab/beta', path: '/srv/vl/lab/beta-shared', clients: '10.200.1.0/24' };
  const paths = { recoveryRoot: '/run/virtualinux/nfs/recovery' };

  it('renders NFSv4-only TCP exports, each open read-write to its subnet only (golden)', () => {
    assert.equal(renderGaneshaConfig([beta, alpha], paths), `# Written by VirtuaLinux (drivers/nfs): do not edit, it is replaced whole.
NFS_CORE_PARAM { Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }
NFSv4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = "/run/virtualinux/nfs/recovery"; }
NFS_KRB5 { Active_krb5 = false; }
LOG { COMPONENTS { EXPORT = INFO; } }
EXPORT {
  Export_Id = 55468; Path = "/srv/vl/default/alpha-shared"; Pseudo = "/vc/default/alpha";
  Access_Type = None; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  CLIENT { Clients = 10.200.0.0/24; Access_Type = RW; Protocols = 4; }
  FSAL { Name = VFS; }
}
EXPORT {
  Export_Id = 20458; Path = "/srv/vl/lab/beta-shared"; Pseudo = "/vc/lab/beta";
  Access_Type = None; Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
  CLIENT { Clients = 10.200.1.0/24; Access_Type = RW; Protocols = 4; }
  FSAL { Name = VFS; }
}
`);
  });

  it('gives a VC the same export id whatever else is exported (file handles stay valid across reloads and nodes)', () => {
    const alone = exportIds([alpha]).get(alpha.pseudo);
    assert.equal(exportIds([beta, alpha]).get(alpha.pseudo), alone);
    const ids = [...exportIds([alpha, beta]).values()];
    assert.ok(ids.every((id) => id >= 1 && id <= 65534));
    assert.equal(renderGaneshaConfig([alpha, beta], paths), renderGaneshaConfig([beta, alpha], paths));
  });

  it('rejects values that could break out of the config, duplicates and the pseudo root', () => {
    assert.throws(() => renderGaneshaConfig([{ ...alpha, path: '/srv/x"; } EXPORT { Path = "/' }], paths), /must be an absolute path/);
    assert.throws(() => renderGaneshaConfig([{ ...alpha, path: '/srv/../etc' }], paths), /without "\.\."/);
    assert.throws(() => renderGaneshaConfig([{ ...alpha, clients: '*' }], paths), /must be an IPv4 CIDR/);
    assert.throws(() => renderGaneshaConfig([alpha, { ...beta, pseudo: alpha.pseudo }], paths), /exported twice/);
    assert.throws(() => renderGaneshaConfig([{ ...alpha, pseudo: '/' }], paths), /pseudo root/);
  });
});
