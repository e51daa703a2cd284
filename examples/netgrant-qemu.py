#!/usr/bin/python3
"""Start QEMU on a netgrant NAT network, from Python with GDBus (PyGObject).

    examples/netgrant-qemu.py NETWORK qemu-system-x86_64 [QEMU ARGS...]

Creates the NAT network NETWORK (or joins it, if it is yours), asks for a
tap on it, and runs QEMU with the tap's fd and a virtio NIC using the MAC
netgrant chose, so the guest's DHCP lease shows up on the tap. The network
is held by this program's D-Bus connection: it goes away when QEMU exits
(unless it is persistent). Exits with QEMU's status.

Needs python3-gi (Debian) / python3-gobject (Fedora).
"""

import subprocess
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

BUS_NAME = "org.netgrant.NetGrant1"
MANAGER_PATH = "/org/netgrant/NetGrant1"
MANAGER = "org.netgrant.NetGrant1.Manager"
# Lets polkit ask for a password (through the desktop's agent).
INTERACTIVE = Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    network, qemu = argv[1], argv[2:]
    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    try:
        bus.call_sync(
            BUS_NAME, MANAGER_PATH, MANAGER, "CreateNATNetwork",
            GLib.Variant("(sa{sv})", (network, {})),
            GLib.VariantType("(oa{sv})"), INTERACTIVE, -1, None)
        # The reply carries the tap's fds: (o tap, ah fds, a{sv} info), each
        # h an index into the returned fd list.
        reply, fd_list = bus.call_with_unix_fd_list_sync(
            BUS_NAME, MANAGER_PATH, MANAGER, "CreateTap",
            GLib.Variant("(a{sv})", ({"network": GLib.Variant("s", network)},)),
            GLib.VariantType("(oaha{sv})"), INTERACTIVE, -1, None, None)
    except GLib.Error as e:
        # e.message is "GDBus.Error:<name>: <what to do>".
        print("netgrant-qemu: " + e.message, file=sys.stderr)
        return 1
    tap, handles, info = reply.unpack()
    fds = fd_list.steal_fds()
    fd = fds[handles[0]]
    print(f"netgrant-qemu: tap {info['ifname']} on {network}, "
          f"guest MAC {info['mac']}", file=sys.stderr, flush=True)
    args = qemu + [
        "-netdev", f"tap,id=netgrant0,fd={fd}",
        "-device", f"virtio-net-pci,netdev=netgrant0,mac={info['mac']}",
    ]
    # QEMU gets the fd at the same number; the network stays held while
    # this process (and its bus connection) waits for QEMU.
    return subprocess.run(args, pass_fds=fds).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
