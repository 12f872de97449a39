//! MPTCP option parsing and emission: Linux's byte forms, the option-length sweep
//! (every subtype × every length 0–40 × truncated buffers), round trips and
//! never-panic properties.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;

use dataplane::seq::Dsn;
use dataplane::wire::mptcp::{
    may_share, subtype, AddAddr, DsnField, Dss, Mapping, MpCapable, MpJoin, MpcVariant,
    MptcpOptError, MptcpOption, RemoveAddr,
};
use dataplane::wire::tcp::TcpFlags;
use proptest::prelude::*;

const KEY_A: [u8; 8] = [0x41, 0x92, 0x32, 0x06, 0xb7, 0x58, 0x35, 0xf5];
const KEY_B: [u8; 8] = [0xbb, 0x20, 0x6e, 0x30, 0x23, 0xb4, 0x7a, 0x2d];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Parses `bytes` (the option followed by Linux's NOP padding) and checks the value,
/// the exact re-emission and the aligned re-emission.
fn check(bytes: &[u8], want: MptcpOption) {
    let got = MptcpOption::parse(bytes).unwrap();
    assert_eq!(got, want);
    let len = usize::from(bytes[1]);
    assert_eq!(got.len(), len);
    let mut out = [0u8; 40];
    assert_eq!(got.emit(&mut out), Ok(len));
    assert_eq!(&out[..len], &bytes[..len]);
    assert_eq!(got.emit_aligned(&mut out), Ok(bytes.len()));
    assert_eq!(&out[..bytes.len()], bytes);
}

#[test]
fn mp_capable_forms() {
    let a = u64::from_be_bytes(KEY_A);
    let b = u64::from_be_bytes(KEY_B);
    check(
        &[30, 4, 0x01, 0x01],
        MptcpOption::MpCapable(MpCapable::new(MpcVariant::Syn, false, false)),
    );
    // A v2 SYN is tolerated; flags A and C.
    let v2 = MpCapable {
        version: 2,
        ..MpCapable::new(MpcVariant::Syn, true, true)
    };
    check(&[30, 4, 0x02, 0xa1], MptcpOption::MpCapable(v2));
    let synack = MpcVariant::SynAck { sender_key: b };
    check(
        &cat(&[&[30, 12, 0x01, 0x01], &KEY_B]),
        MptcpOption::MpCapable(MpCapable::new(synack, false, false)),
    );
    let ack = MpcVariant::Ack {
        sender_key: a,
        receiver_key: b,
    };
    check(
        &cat(&[&[30, 20, 0x01, 0x01], &KEY_A, &KEY_B]),
        MptcpOption::MpCapable(MpCapable::new(ack, false, false)),
    );
    // First data segment, 16 bytes, without checksum: Linux pads with two NOPs.
    let data = MpcVariant::AckData {
        sender_key: a,
        receiver_key: b,
        data_len: 16,
        checksum: None,
    };
    let bytes = cat(&[&[30, 22, 0x01, 0x01], &KEY_A, &KEY_B, &[0, 16, 1, 1]]);
    check(
        &bytes,
        MptcpOption::MpCapable(MpCapable::new(data, false, false)),
    );
    let csum = MpcVariant::AckData {
        sender_key: a,
        receiver_key: b,
        data_len: 16,
        checksum: Some(0xfd73),
    };
    let bytes = cat(&[&[30, 24, 0x01, 0x81], &KEY_A, &KEY_B, &[0, 16, 0xfd, 0x73]]);
    check(
        &bytes,
        MptcpOption::MpCapable(MpCapable::new(csum, true, false)),
    );
}

#[test]
fn mp_capable_refusals_match_linux() {
    // packetdrill v1_bind_tcpfallback_flagB (0x41), _flagH (0x00), _wrongver (v0).
    assert_eq!(
        MptcpOption::parse(&[30, 4, 0x01, 0x41]),
        Err(MptcpOptError::BadFlags)
    );
    assert_eq!(
        MptcpOption::parse(&[30, 4, 0x01, 0x00]),
        Err(MptcpOptError::BadFlags)
    );
    assert_eq!(
        MptcpOption::parse(&[30, 4, 0x01, 0x03]),
        Err(MptcpOptError::BadFlags)
    );
    assert_eq!(
        MptcpOption::parse(&[30, 4, 0x00, 0x01]),
        Err(MptcpOptError::BadVersion)
    );
    let v0_syn = cat(&[&[30, 12, 0x00, 0x01], &KEY_A]);
    assert_eq!(MptcpOption::parse(&v0_syn), Err(MptcpOptError::BadVersion));
    let v2_synack = cat(&[&[30, 12, 0x02, 0x01], &KEY_A]);
    assert_eq!(
        MptcpOption::parse(&v2_synack),
        Err(MptcpOptError::BadVersion)
    );
}

#[test]
fn mp_join_forms() {
    let syn = [
        30, 12, 0x10, 0x02, 0xb8, 0x5a, 0x1a, 0xd2, 0x2c, 0x79, 0x7c, 0xde,
    ];
    check(
        &syn,
        MptcpOption::MpJoin(MpJoin::Syn {
            backup: false,
            addr_id: 2,
            token: 0xb85a_1ad2,
            nonce: 0x2c79_7cde,
        }),
    );
    let synack = [
        30, 16, 0x11, 0x00, 0x74, 0xa5, 0xd4, 0xc3, 0xa8, 0xf0, 0x3e, 0x3e, 0xe8, 0xbf, 0x89, 0xf6,
    ];
    let want = MpJoin::SynAck {
        backup: true,
        addr_id: 0,
        hmac: 0x74a5_d4c3_a8f0_3e3e,
        nonce: 0xe8bf_89f6,
    };
    check(&synack, MptcpOption::MpJoin(want));
    let hmac: [u8; 20] = std::array::from_fn(|i| i as u8 * 7);
    check(
        &cat(&[&[30, 24, 0x10, 0x00], &hmac]),
        MptcpOption::MpJoin(MpJoin::Ack { hmac }),
    );
    // Reserved bits are ignored, as Linux does.
    let mut noisy = syn;
    noisy[2] = 0x1e;
    assert!(matches!(
        MptcpOption::parse(&noisy),
        Ok(MptcpOption::MpJoin(MpJoin::Syn { backup: false, .. }))
    ));
}

#[test]
fn dss_forms_from_a_linux_trace() {
    // "dss ack 1331650533424046587 seq 1711754507747579648 subseq 17 len 16": 64-bit
    // ack and DSN, no checksum, two NOPs.
    let ack = 1_331_650_533_424_046_587u64.to_be_bytes();
    let dsn = 1_711_754_507_747_579_648u64.to_be_bytes();
    let bytes = cat(&[
        &[30, 26, 0x20, 0x0f],
        &ack,
        &dsn,
        &[0, 0, 0, 17, 0, 16, 1, 1],
    ]);
    let want = Dss {
        data_ack: Some(DsnField::Bits64(Dsn::new(1_331_650_533_424_046_587))),
        mapping: Some(Mapping::new(
            Dsn::new(1_711_754_507_747_579_648),
            17,
            16,
            None,
        )),
        data_fin: false,
    };
    check(&bytes, MptcpOption::Dss(want));
    // "dss fin ack … seq 1711754507747579664 subseq 0 len 1": the DATA_FIN-only form.
    let fin = 1_711_754_507_747_579_664u64.to_be_bytes();
    let bytes = cat(&[&[30, 26, 0x20, 0x1f], &ack, &fin, &[0, 0, 0, 0, 0, 1, 1, 1]]);
    let ack = Some(DsnField::Bits64(Dsn::new(1_331_650_533_424_046_587)));
    check(
        &bytes,
        MptcpOption::Dss(Dss::data_fin_only(
            Dsn::new(1_711_754_507_747_579_664),
            ack,
            None,
        )),
    );
}

#[test]
fn dss_every_flag_combination() {
    for flags in 0u8..32 {
        let ack = flags & 1 != 0;
        let map = flags & 4 != 0;
        let ack_len = if ack {
            if flags & 2 != 0 {
                8
            } else {
                4
            }
        } else {
            0
        };
        let map_len = if map {
            if flags & 8 != 0 {
                14
            } else {
                10
            }
        } else {
            0
        };
        let base = 4 + ack_len + map_len;
        for len in 0..=40usize {
            let mut opt = vec![0x5a; len.max(4)];
            opt[0] = 30;
            opt[1] = len as u8;
            opt[2] = 0x20;
            opt[3] = flags;
            let got = MptcpOption::parse(&opt[..len.max(2)]);
            let legal = len == base || (map && len == base + 2);
            match got {
                Ok(MptcpOption::Dss(d)) => {
                    assert!(legal, "flags {flags:#x} len {len}");
                    assert_eq!(d.data_ack.is_some(), ack);
                    assert_eq!(
                        d.mapping.map(|m| m.checksum.is_some()),
                        map.then_some(len == base + 2)
                    );
                    assert_eq!(d.data_fin, flags & 0x10 != 0);
                }
                Err(e) => {
                    assert!(!legal, "flags {flags:#x} len {len}: {e:?}");
                    assert_eq!(e, MptcpOptError::BadLength);
                }
                Ok(other) => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn dss_emits_linux_forms() {
    let ack32 = DsnField::data_ack(Dsn::new(0x1_0000_0005), false);
    assert_eq!(ack32, DsnField::Bits32(5));
    let mut out = [0u8; 40];
    let n = MptcpOption::Dss(Dss::ack(ack32))
        .emit_aligned(&mut out)
        .unwrap();
    assert_eq!(&out[..n], &[30, 8, 0x20, 0x01, 0, 0, 0, 5]);
    let ack64 = DsnField::data_ack(Dsn::new(0x1_0000_0005), true);
    let m = Mapping::new(Dsn::new(9), 1, 100, Some(0xbeef));
    let d = Dss {
        data_ack: Some(ack64),
        mapping: Some(m),
        data_fin: false,
    };
    let n = MptcpOption::Dss(d).emit_aligned(&mut out).unwrap();
    assert_eq!(n, 28, "ack64 + map64 + checksum is the largest DSS");
    assert_eq!(out[3], 0x0f);
    assert_eq!(
        DsnField::Bits32(5).expand(Dsn::new(0x1_ffff_fff0)),
        Dsn::new(0x2_0000_0005)
    );
}

#[test]
fn add_addr_forms() {
    let v4: IpAddr = "10.0.2.1".parse().unwrap();
    let v6: IpAddr = "dead:beef:2::1".parse().unwrap();
    let h = 0xc6db_6499_2db3_6770u64.to_be_bytes();
    let a = AddAddr {
        addr_id: 1,
        addr: v4,
        port: None,
        hmac: Some(0xc6db_6499_2db3_6770),
    };
    check(
        &cat(&[&[30, 16, 0x30, 1, 10, 0, 2, 1], &h]),
        MptcpOption::AddAddr(a),
    );
    let with_port = AddAddr {
        port: Some(10100),
        ..a
    };
    check(
        &cat(&[&[30, 18, 0x30, 1, 10, 0, 2, 1, 0x27, 0x74], &h, &[1, 1]]),
        MptcpOption::AddAddr(with_port),
    );
    check(
        &[30, 8, 0x31, 1, 10, 0, 2, 1],
        MptcpOption::AddAddr(a.echo()),
    );
    check(
        &[30, 10, 0x31, 1, 10, 0, 2, 1, 0x27, 0x74, 1, 1],
        MptcpOption::AddAddr(with_port.echo()),
    );
    let a6 = AddAddr {
        addr_id: 2,
        addr: v6,
        port: None,
        hmac: Some(0x59e7_bfc0_ad07_86cc),
    };
    let v6b = [0xde, 0xad, 0xbe, 0xef, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let h6 = 0x59e7_bfc0_ad07_86ccu64.to_be_bytes();
    check(
        &cat(&[&[30, 28, 0x30, 2], &v6b, &h6]),
        MptcpOption::AddAddr(a6),
    );
    let a6p = AddAddr {
        port: Some(1),
        ..a6
    };
    check(
        &cat(&[&[30, 30, 0x30, 2], &v6b, &[0, 1], &h6, &[1, 1]]),
        MptcpOption::AddAddr(a6p),
    );
    check(
        &cat(&[&[30, 20, 0x31, 2], &v6b]),
        MptcpOption::AddAddr(a6.echo()),
    );
    check(
        &cat(&[&[30, 22, 0x31, 2], &v6b, &[0, 1, 1, 1]]),
        MptcpOption::AddAddr(a6p.echo()),
    );
    // An echo length with E clear, and the reverse, are refused.
    assert_eq!(
        MptcpOption::parse(&[30, 8, 0x30, 1, 10, 0, 2, 1]),
        Err(MptcpOptError::BadLength)
    );
    let mut wrong = cat(&[&[30, 16, 0x31, 1, 10, 0, 2, 1], &h]);
    assert_eq!(MptcpOption::parse(&wrong), Err(MptcpOptError::BadLength));
    wrong[2] = 0x30;
    assert!(MptcpOption::parse(&wrong).is_ok());
}

#[test]
fn small_subtypes() {
    check(
        &[30, 4, 0x40, 7],
        MptcpOption::RemoveAddr(RemoveAddr::new(&[7]).unwrap()),
    );
    check(
        &[30, 6, 0x40, 1, 2, 3, 1, 1],
        MptcpOption::RemoveAddr(RemoveAddr::new(&[1, 2, 3]).unwrap()),
    );
    let eight = [30, 11, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 1];
    check(
        &eight,
        MptcpOption::RemoveAddr(RemoveAddr::new(&eight[3..11]).unwrap()),
    );
    assert!(RemoveAddr::new(&[]).is_none() && RemoveAddr::new(&[0; 9]).is_none());
    check(&[30, 3, 0x51, 1], MptcpOption::MpPrio { backup: true });
    check(&[30, 3, 0x50, 1], MptcpOption::MpPrio { backup: false });
    let dsn = 0x17c1_5fa7_d0f7_d6f0u64;
    check(
        &cat(&[&[30, 12, 0x60, 0], &dsn.to_be_bytes()]),
        MptcpOption::MpFail { dsn: Dsn::new(dsn) },
    );
    check(
        &cat(&[&[30, 12, 0x70, 0], &KEY_A]),
        MptcpOption::MpFastclose {
            receiver_key: u64::from_be_bytes(KEY_A),
        },
    );
    check(
        &[30, 4, 0x81, 1],
        MptcpOption::MpTcpRst {
            flags: 1,
            reason: 1,
        },
    );
    assert_eq!(
        MptcpOption::parse(&[30, 4, 0xf0, 0]),
        Err(MptcpOptError::UnknownSubtype(0xf))
    );
    assert_eq!(
        MptcpOption::parse(&[2, 4, 5, 0xb4]),
        Err(MptcpOptError::NotMptcp)
    );
}

/// The lengths Linux accepts, per subtype, for the probe bytes the sweep uses (byte 2 low
/// nibble and byte 3 as given; for MP_CAPABLE version 1 with flag H).
fn legal_lengths(sub: u8, nibble: u8, byte3: u8) -> &'static [usize] {
    match sub {
        subtype::MP_CAPABLE => &[4, 12, 20, 22, 24],
        subtype::MP_JOIN => &[12, 16, 24],
        subtype::DSS => match byte3 & 0x1f {
            0x00 => &[4],
            0x05 => &[18, 20],
            0x0f => &[26, 28],
            _ => unreachable!(),
        },
        subtype::ADD_ADDR if nibble & 1 == 0 => &[16, 18, 28, 30],
        subtype::ADD_ADDR => &[8, 10, 20, 22],
        subtype::REMOVE_ADDR => &[4, 5, 6, 7, 8, 9, 10, 11],
        subtype::MP_PRIO => &[3],
        subtype::MP_FAIL | subtype::MP_FASTCLOSE => &[12],
        subtype::MP_TCPRST => &[4],
        _ => &[],
    }
}

#[test]
fn option_length_sweep() {
    for sub in 0u8..16 {
        let probes: &[(u8, u8)] = match sub {
            subtype::MP_CAPABLE => &[(1, 0x01)],
            subtype::DSS => &[(0, 0x00), (0, 0x05), (0, 0x0f)],
            subtype::ADD_ADDR => &[(0, 9), (1, 9)],
            _ => &[(0, 0), (0xf, 0xff)],
        };
        for &(nibble, byte3) in probes {
            let legal = legal_lengths(sub, nibble, byte3);
            for len in 0..=40usize {
                let mut opt = [0xa5u8; 40];
                opt[0] = 30;
                opt[1] = len as u8;
                opt[2] = sub << 4 | nibble;
                opt[3] = byte3;
                let got = MptcpOption::parse(&opt[..len.max(2)]);
                let want_ok = legal.contains(&len);
                match &got {
                    Ok(o) => {
                        assert!(want_ok, "sub {sub} len {len}: {o:?}");
                        assert_eq!((o.subtype(), o.len()), (sub, len));
                    }
                    Err(MptcpOptError::UnknownSubtype(s)) => {
                        assert!(sub > 8 && len >= 3 && *s == sub);
                    }
                    Err(e) => {
                        assert!(!want_ok, "sub {sub} len {len}: {e:?}");
                        assert_eq!(*e, MptcpOptError::BadLength, "sub {sub} len {len}");
                    }
                }
                // Every truncation of the buffer below the claimed length.
                for cut in 0..len.min(opt.len()) {
                    assert_eq!(
                        MptcpOption::parse(&opt[..cut]),
                        Err(MptcpOptError::Truncated)
                    );
                }
            }
        }
    }
}

#[test]
fn segment_rules() {
    let syn = TcpFlags::SYN;
    let synack = TcpFlags::SYN | TcpFlags::ACK;
    let ack = TcpFlags::ACK;
    let mpc = |v| MptcpOption::MpCapable(MpCapable::new(v, false, false));
    assert!(mpc(MpcVariant::Syn).valid_on(syn, 0) && !mpc(MpcVariant::Syn).valid_on(synack, 0));
    assert!(mpc(MpcVariant::SynAck { sender_key: 1 }).valid_on(synack, 0));
    let third = mpc(MpcVariant::Ack {
        sender_key: 1,
        receiver_key: 2,
    });
    assert!(third.valid_on(ack, 0) && !third.valid_on(ack, 10));
    let data = mpc(MpcVariant::AckData {
        sender_key: 1,
        receiver_key: 2,
        data_len: 10,
        checksum: None,
    });
    assert!(data.valid_on(ack, 10) && !data.valid_on(ack, 0));
    let rst = MptcpOption::MpTcpRst {
        flags: 0,
        reason: 1,
    };
    assert!(rst.valid_on(TcpFlags::RST | ack, 0) && !rst.valid_on(ack, 0));
    let join_syn = MptcpOption::MpJoin(MpJoin::Syn {
        backup: false,
        addr_id: 0,
        token: 0,
        nonce: 0,
    });
    assert!(join_syn.valid_on(syn, 0) && !join_syn.valid_on(ack, 0));
    assert!(!MptcpOption::MpPrio { backup: true }.valid_on(syn, 0));

    use subtype::*;
    assert!(may_share(DSS, MP_FAIL) && may_share(MP_FAIL, DSS));
    assert!(may_share(REMOVE_ADDR, MP_CAPABLE) && may_share(MP_PRIO, MP_JOIN));
    assert!(may_share(MP_TCPRST, MP_FASTCLOSE) && may_share(MP_TCPRST, MP_FAIL));
    assert!(!may_share(DSS, ADD_ADDR) && !may_share(MP_CAPABLE, MP_JOIN) && !may_share(DSS, DSS));
    assert!(!may_share(MP_PRIO, MP_CAPABLE) && !may_share(MP_FASTCLOSE, DSS));
}

fn dsn_field() -> impl Strategy<Value = DsnField> {
    prop_oneof![
        any::<u32>().prop_map(DsnField::Bits32),
        any::<u64>().prop_map(|v| DsnField::Bits64(Dsn::new(v))),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn mpc() -> impl Strategy<Value = MpCapable> {
    let variant = prop_oneof![
        Just(MpcVariant::Syn),
        any::<u64>().prop_map(|sender_key| MpcVariant::SynAck { sender_key }),
        (any::<u64>(), any::<u64>()).prop_map(|(s, r)| MpcVariant::Ack {
            sender_key: s,
            receiver_key: r
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<Option<u16>>()
        )
            .prop_map(|(s, r, l, c)| {
                MpcVariant::AckData {
                    sender_key: s,
                    receiver_key: r,
                    data_len: l,
                    checksum: c,
                }
            }),
    ];
    (variant, any::<bool>(), any::<bool>(), 1u8..16).prop_map(|(v, a, c, version)| {
        let version = if v == MpcVariant::Syn { version } else { 1 };
        MpCapable {
            version,
            ..MpCapable::new(v, a, c)
        }
    })
}

fn join() -> impl Strategy<Value = MpJoin> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(backup, addr_id, token, nonce)| MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u64>(), any::<u32>()).prop_map(
            |(backup, addr_id, hmac, nonce)| MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce
            }
        ),
        any::<[u8; 20]>().prop_map(|hmac| MpJoin::Ack { hmac }),
    ]
}

fn option() -> impl Strategy<Value = MptcpOption> {
    let mapping = (
        dsn_field(),
        any::<u32>(),
        any::<u16>(),
        any::<Option<u16>>(),
    )
        .prop_map(|(dsn, ssn, data_len, checksum)| Mapping {
            dsn,
            ssn,
            data_len,
            checksum,
        });
    let dss = (
        proptest::option::of(dsn_field()),
        proptest::option::of(mapping),
        any::<bool>(),
    )
        .prop_map(|(data_ack, mapping, data_fin)| Dss {
            data_ack,
            mapping,
            data_fin,
        });
    let add = (
        any::<u8>(),
        ip(),
        any::<Option<u16>>(),
        any::<Option<u64>>(),
    )
        .prop_map(|(addr_id, addr, port, hmac)| AddAddr {
            addr_id,
            addr,
            port,
            hmac,
        });
    let rm = proptest::collection::vec(any::<u8>(), 1..=8)
        .prop_map(|ids| RemoveAddr::new(&ids).unwrap());
    prop_oneof![
        mpc().prop_map(MptcpOption::MpCapable),
        join().prop_map(MptcpOption::MpJoin),
        dss.prop_map(MptcpOption::Dss),
        add.prop_map(MptcpOption::AddAddr),
        rm.prop_map(MptcpOption::RemoveAddr),
        any::<bool>().prop_map(|backup| MptcpOption::MpPrio { backup }),
        any::<u64>().prop_map(|d| MptcpOption::MpFail { dsn: Dsn::new(d) }),
        any::<u64>().prop_map(|receiver_key| MptcpOption::MpFastclose { receiver_key }),
        (0u8..16, any::<u8>()).prop_map(|(flags, reason)| MptcpOption::MpTcpRst { flags, reason }),
    ]
}

proptest! {
    #[test]
    fn emit_then_parse_round_trips(o in option()) {
        let mut buf = [0u8; 40];
        let n = o.emit(&mut buf).unwrap();
        prop_assert_eq!(n, o.len());
        prop_assert_eq!(MptcpOption::parse(&buf[..n]), Ok(o));
        let aligned = o.emit_aligned(&mut buf).unwrap();
        prop_assert_eq!(aligned % 4, 0);
        prop_assert!(buf[n..aligned].iter().all(|&b| b == 1));
        prop_assert_eq!(MptcpOption::parse(&buf[..aligned]), Ok(o));
        prop_assert_eq!(o.emit(&mut buf[..n - 1]), Err(dataplane::wire::WireError::NoRoom));
    }

    #[test]
    fn parsing_arbitrary_bytes_is_total_and_idempotent(bytes in proptest::collection::vec(any::<u8>(), 0..48), kind30: bool) {
        let mut bytes = bytes;
        if kind30 && !bytes.is_empty() {
            bytes[0] = 30;
        }
        if let Ok(o) = MptcpOption::parse(&bytes) {
            let mut buf = [0u8; 40];
            let n = o.emit(&mut buf).unwrap();
            prop_assert_eq!(n, usize::from(bytes[1]));
            prop_assert_eq!(MptcpOption::parse(&buf[..n]), Ok(o));
        }
    }
}
