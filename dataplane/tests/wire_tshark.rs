//! mpgw-emitted MPTCP options, every subtype and variant, written into a pcap and
//! decoded by Wireshark's dissector (tshark, installed by deploy/setup.sh): every option
//! is recognised with the right subtype and fields, and nothing is flagged malformed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::seq::{Dsn, TcpSeq};
use dataplane::wire::ethernet::{ethertype, EthernetRepr};
use dataplane::wire::ipv4::Ipv4Repr;
use dataplane::wire::mptcp::{
    AddAddr, DsnField, Dss, Mapping, MpCapable, MpJoin, MpcVariant, MptcpOption, RemoveAddr,
};
use dataplane::wire::tcp::{OptionsBuf, TcpFlags, TcpPacket, TcpRepr};
use dataplane::wire::{checksum, ip_proto, MacAddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const KEY_A: u64 = 0x0123_4567_89ab_cdef;
const KEY_B: u64 = 0xfedc_ba98_7654_3210;

/// (TCP flags, payload length, option, the subtype tshark must report).
fn cases() -> Vec<(TcpFlags, usize, MptcpOption)> {
    let syn = TcpFlags::SYN;
    let synack = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
    let ack = TcpFlags::ACK;
    let rst = TcpFlags(TcpFlags::RST.0 | TcpFlags::ACK.0);
    let mpc = |v, csum| MptcpOption::MpCapable(MpCapable::new(v, csum, false));
    let ack_data = |checksum: Option<u16>| {
        let variant = MpcVariant::AckData {
            sender_key: KEY_A,
            receiver_key: KEY_B,
            data_len: 100,
            checksum,
        };
        mpc(variant, checksum.is_some())
    };
    let dsn = Dsn::new(0x1122_3344_5566_7788);
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
    let v4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let add = |addr, port, hmac| {
        MptcpOption::AddAddr(AddAddr {
            addr_id: 3,
            addr,
            port,
            hmac,
        })
    };
    let dss = |data_ack, mapping, data_fin| {
        MptcpOption::Dss(Dss {
            data_ack,
            mapping,
            data_fin,
        })
    };
    vec![
        (syn, 0, mpc(MpcVariant::Syn, false)),
        (syn, 0, mpc(MpcVariant::Syn, true)),
        (
            synack,
            0,
            mpc(MpcVariant::SynAck { sender_key: KEY_B }, false),
        ),
        (
            ack,
            0,
            mpc(
                MpcVariant::Ack {
                    sender_key: KEY_A,
                    receiver_key: KEY_B,
                },
                false,
            ),
        ),
        (ack, 100, ack_data(None)),
        (ack, 100, ack_data(Some(0xbeef))),
        (
            syn,
            0,
            MptcpOption::MpJoin(MpJoin::Syn {
                backup: true,
                addr_id: 2,
                token: 0xdead_beef,
                nonce: 7,
            }),
        ),
        (
            synack,
            0,
            MptcpOption::MpJoin(MpJoin::SynAck {
                backup: false,
                addr_id: 0,
                hmac: 0x0102_0304_0506_0708,
                nonce: 9,
            }),
        ),
        (
            ack,
            0,
            MptcpOption::MpJoin(MpJoin::Ack { hmac: [0xab; 20] }),
        ),
        (
            ack,
            0,
            dss(Some(DsnField::Bits32(0x5566_7788)), None, false),
        ),
        (ack, 0, dss(Some(DsnField::Bits64(dsn)), None, false)),
        (
            ack,
            100,
            dss(
                Some(DsnField::Bits32(1)),
                Some(Mapping::new(dsn, 1, 100, None)),
                false,
            ),
        ),
        (
            ack,
            100,
            dss(
                Some(DsnField::Bits64(dsn)),
                Some(Mapping::new(dsn, 1, 100, Some(0x1234))),
                false,
            ),
        ),
        (
            ack,
            100,
            dss(None, Some(Mapping::new(dsn, 1, 100, None)), true),
        ),
        (
            ack,
            0,
            MptcpOption::Dss(Dss::data_fin_only(dsn, Some(DsnField::Bits64(dsn)), None)),
        ),
        (ack, 0, add(v4, None, Some(0x0807_0605_0403_0201))),
        (ack, 0, add(v4, Some(8080), Some(0x0807_0605_0403_0201))),
        (ack, 0, add(v4, None, None)),
        (ack, 0, add(v6, None, Some(0x0807_0605_0403_0201))),
        (ack, 0, add(v6, Some(443), None)),
        (
            ack,
            0,
            MptcpOption::RemoveAddr(RemoveAddr::new(&[3]).unwrap()),
        ),
        (
            ack,
            0,
            MptcpOption::RemoveAddr(RemoveAddr::new(&[1, 2, 3, 4]).unwrap()),
        ),
        (ack, 0, MptcpOption::MpPrio { backup: true }),
        (ack, 0, MptcpOption::MpFail { dsn }),
        (
            rst,
            0,
            MptcpOption::MpFastclose {
                receiver_key: KEY_B,
            },
        ),
        (
            rst,
            0,
            MptcpOption::MpTcpRst {
                flags: 1,
                reason: 6,
            },
        ),
    ]
}

/// An Ethernet/IPv4/TCP frame carrying `opt` and `payload_len` zero bytes.
fn frame(flags: TcpFlags, payload_len: usize, opt: &MptcpOption) -> Vec<u8> {
    assert!(
        opt.valid_on(flags, payload_len),
        "{opt:?} is not legal on {flags:?}"
    );
    let mut options = OptionsBuf::default();
    options.push_mptcp(opt).unwrap();
    let tcp_len = TcpRepr::header_len(&options) + payload_len;
    let eth = EthernetRepr {
        dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: MacAddr([2, 0, 0, 0, 0, 1]),
        vlan_tci: None,
        ethertype: ethertype::IPV4,
    };
    let ip = Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol: ip_proto::TCP,
        payload_len: tcp_len as u16,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    };
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 8080,
        seq: TcpSeq::new(1000),
        ack: TcpSeq::new(if flags.contains(TcpFlags::ACK) {
            2000
        } else {
            0
        }),
        flags,
        window: 512,
        urgent: 0,
    };
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    eth.emit(&mut f).unwrap();
    ip.emit(&mut f[14..]).unwrap();
    tcp.emit(&mut f[34..], &options).unwrap();
    let pseudo = checksum::pseudo_header_v4(SRC, DST, ip_proto::TCP, tcp_len as u16);
    TcpPacket::parse(&mut f[34..])
        .unwrap()
        .fill_checksum(pseudo);
    f
}

fn tshark(pcap: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("tshark is required (deploy/setup.sh installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tshark_decodes_every_emitted_option_without_complaint() {
    let cases = cases();
    let dir = std::env::temp_dir().join(format!("mpgw-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("mpgw-options.pcap");
    {
        let file = std::fs::File::create(&pcap).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
        for (i, (flags, len, opt)) in cases.iter().enumerate() {
            let data = frame(*flags, *len, opt);
            let ts = std::time::Duration::from_millis(i as u64);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                ts,
                data.len() as u32,
                &data,
            ))
            .unwrap();
        }
    }
    let fields = tshark(
        &pcap,
        &[
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.options.mptcp.subtype",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ],
    );
    let rows: Vec<&str> = fields.lines().collect();
    assert_eq!(rows.len(), cases.len());
    for (row, (_, _, opt)) in rows.iter().zip(&cases) {
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(cols[0], opt.subtype().to_string(), "{opt:?}: {row}");
        assert!(cols[1].is_empty(), "{opt:?} flagged malformed: {row}");
    }
    // A few decoded values, to be sure the dissector read the bytes as we meant them.
    let keys = tshark(
        &pcap,
        &[
            "-Y",
            "frame.number==4",
            "-T",
            "fields",
            "-e",
            "tcp.options.mptcp.sendkey",
            "-e",
            "tcp.options.mptcp.recvkey",
        ],
    );
    assert_eq!(keys.trim(), format!("{KEY_A}\t{KEY_B}"));
    let join = tshark(
        &pcap,
        &[
            "-Y",
            "frame.number==7",
            "-T",
            "fields",
            "-e",
            "tcp.options.mptcp.recvtok",
            "-e",
            "tcp.options.mptcp.addrid",
            "-e",
            "tcp.options.mptcp.backup.flag",
        ],
    );
    assert_eq!(join.trim(), format!("{}\t2\t1", 0xdead_beef_u32));
    let addr = tshark(
        &pcap,
        &[
            "-Y",
            "frame.number==17",
            "-T",
            "fields",
            "-e",
            "tcp.options.mptcp.ipv4",
            "-e",
            "tcp.options.mptcp.port",
        ],
    );
    assert_eq!(addr.trim(), "198.51.100.1\t8080");
    let dss = tshark(
        &pcap,
        &[
            "-Y",
            "frame.number==13",
            "-T",
            "fields",
            "-e",
            "tcp.options.mptcp.rawdataseqno",
            "-e",
            "tcp.options.mptcp.datalvllen",
        ],
    );
    assert_eq!(dss.trim(), format!("{}\t100", 0x1122_3344_5566_7788_u64));
    let _ = std::fs::remove_dir_all(dir);
}
