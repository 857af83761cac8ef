// The vif hotplug script XenDriver installs as `<runRoot>/vl-vif` and names in every domain's vif
// (`script=`): it puts a domU's network interface on the routed per-VC network exactly as a QEMU
// VM's tap is (drivers/network/host-network.ts), so the network layer needs no Xen of its own.
//
// How it fits the network layer: before a VM may start, the network reconciler has made on the
// node a placeholder tap under the VM's interface name (`vt…`: persistent tuntap, the VC's gateway
// MAC, the gateway as a /32, proxy ARP, the /32 route to the VM) and loaded the nftables table
// whose anti-spoofing rules match that name (`iifname "vt…"`); the runtime checks both before it
// starts a domain (fail closed). When xl brings the domain's vif up (`online`; libxl passes the
// kernel's name `vifD.N` in $vif and the backend's xenstore path in $XENBUS_PATH, whose `vifname`
// and `ip` are the config's), the script:
//   1. checks that both anti-spoofing rules for that name and the guest's address are loaded, and
//      that the placeholder exists (else it fails: the vif stays down and libxl fails the create);
//   2. takes the placeholder's MAC and IPv4 addresses, gives the vif the MAC (before the rename:
//      a vif the network layer brought up under the name refused a new MAC, EBUSY), deletes the
//      placeholder and renames the vif to the name (again if the network layer re-made it meanwhile);
//   3. gives the vif the addresses, proxy ARP, brings it up, routes the guest's /32 to it
//      (protocol 188: the network layer's own, so its next apply sees nothing to change), and
//      writes hotplug-status `connected`, which netback waits for before it connects the guest.
// Any failure writes hotplug-error, takes the vif down and exits 1. `offline` does nothing: the
// vif, its addresses and route go with the domain, and the network layer makes the placeholder
// again while the VM is still wanted on the node (a restore or an incoming migration finds it).
// POSIX sh; names reach it only through xenstore and the environment, never through its text.

import { RT_PROTO } from '../network/host-network.js';
import { NFT_TABLE } from '../network/types.js';

export const XEN_VIF_SCRIPT = `#!/bin/sh
# VirtuaLinux vif hotplug script for xl (written by XenDriver; do not edit).
dev=\${vif:-}
fail() {
  [ -n "$dev" ] && ip link set dev "$dev" down 2>/dev/null
  xenstore-write "$XENBUS_PATH/hotplug-error" "$1" "$XENBUS_PATH/hotplug-status" error
  echo "vl-vif: $1" >&2
  exit 1
}
case "$1" in
online|add)
  name=$(xenstore-read "$XENBUS_PATH/vifname") || fail "no vifname in $XENBUS_PATH"
  ip=$(xenstore-read "$XENBUS_PATH/ip") || fail "no ip in $XENBUS_PATH"
  case "$name" in vt[0-9a-f]*) ;; *) fail "vifname $name is not one of ours" ;; esac
  [ -e "/sys/class/net/$dev" ] || dev=$name
  # fail closed: the isolation rules for this interface and address must be loaded
  rules=$(nft list table inet ${NFT_TABLE} 2>&1) || fail "nftables table inet ${NFT_TABLE} is not loaded: $rules"
  n=$(printf '%s\\n' "$rules" | grep -cF -- "iifname \\"$name\\" ip saddr != $ip drop")
  [ "$n" -ge 2 ] || fail "the anti-spoofing rules for $name ($ip) are not loaded"
  # the placeholder the network layer made: its MAC and addresses become the vif's
  if [ "$dev" != "$name" ]; then
    [ -e "/sys/class/net/$name" ] || fail "no interface $name on this node: the network of this VM is not in place here"
    mac=$(cat "/sys/class/net/$name/address") || fail "cannot read the MAC of $name"
    addrs=
    prev=
    for w in $(ip -o -4 addr show dev "$name"); do
      [ "$prev" = inet ] && addrs="$addrs $w"
      prev=$w
    done
    # the MAC first, while the vif still has the kernel's name: once renamed, the network layer
    # sees it as the VM's interface and may bring it up meanwhile, and a running vif's MAC cannot
    # change (EBUSY: seen under load)
    ip link set dev "$dev" address "$mac" || fail "cannot set the MAC of $dev"
    i=0
    until ip link set dev "$dev" name "$name" 2>/dev/null; do
      i=$((i + 1))
      [ $i -le 5 ] || fail "cannot rename $dev to $name"
      # only a tun device is the placeholder; anything else of that name is left alone
      [ -e "/sys/class/net/$name/tun_flags" ] && ip link del dev "$name"
    done
    dev=$name
    for a in $addrs; do ip addr replace "$a" dev "$dev" || fail "cannot add $a to $dev"; done
  fi
  sysctl -q -w "net.ipv4.conf.$dev.proxy_arp=1" || fail "cannot turn on proxy ARP on $dev"
  ip link set dev "$dev" up || fail "cannot bring $dev up"
  ip route replace "$ip/32" dev "$dev" proto ${RT_PROTO} || fail "cannot route $ip to $dev"
  xenstore-write "$XENBUS_PATH/hotplug-status" connected || fail "cannot write hotplug-status"
  ;;
offline|remove)
  ;;
esac
exit 0
`;
