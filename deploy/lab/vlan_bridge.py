"""A user-space 802.1Q sub-interface for lab kernels built without VLAN support
(CONFIG_VLAN_8021Q unset, so `ip link add … type vlan` fails): creates the TAP device
`name` and relays frames between it and `parent`, tagging them with VLAN `vid` on the
way out and taking only frames tagged `vid` (untagged) on the way in.

Usage (as root, in the namespace of `parent`): python3 vlan_bridge.py PARENT VID NAME
Runs until killed; the TAP device goes away with it.

The kernel takes the tag off received frames before packet sockets see them, even
without VLAN support: it comes back as PACKET_AUXDATA.
"""

import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA = 263, 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
AUXDATA = struct.Struct("IIIHHHH")


def main():
    parent, vid, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    raw.bind((parent, 0))
    tag = struct.pack("!HH", 0x8100, vid)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([tap, raw], [], [])
        if tap in ready:
            f = os.read(tap, 65536)
            if len(f) >= 14:
                raw.send(f[:12] + tag + f[12:])
        if raw in ready:
            f, anc, _, addr = raw.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
            if addr[2] == PACKET_OUTGOING or len(f) < 14:
                continue
            tci = None
            for level, kind, data in anc:
                if (level, kind) == (SOL_PACKET, PACKET_AUXDATA) and len(data) >= AUXDATA.size:
                    status, _, _, _, _, vlan_tci, _ = AUXDATA.unpack_from(data)
                    if status & TP_STATUS_VLAN_VALID:
                        tci = vlan_tci
            if tci is None and f[12:14] == b"\x81\x00":  # a tag left in the frame
                tci = struct.unpack_from("!H", f, 14)[0]
                f = f[:12] + f[16:]
            if tci is not None and tci & 0x0FFF == vid:
                os.write(tap, f)


if __name__ == "__main__":
    main()
