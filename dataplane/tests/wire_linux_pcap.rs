//! Byte-exact agreement with a real Linux MPTCP v1 connection.
//!
//! `data/linux-mptcp.pcap` was recorded here by `data/capture-linux-mptcp.sh` (kernel
//! MPTCP between two namespaces over two veth pairs: handshakes with and without DSS
//! checksums, two joins, data both ways, ADD_ADDR and its echo, MP_PRIO, REMOVE_ADDR,
//! DATA_FIN, MP_FASTCLOSE with MP_TCPRST). Every MPTCP option in it must parse and
//! re-emit identically, and the cryptography must agree with what the kernel computed:
//! tokens, join HMACs, ADD_ADDR HMACs, the first DSN, and every DSS checksum.
//!
//! The other direction — mpgw-emitted options decoded by tshark — is
//! `wire_tshark.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use dataplane::mptcp::crypto::{self, ConnKeys};
use dataplane::wire::mptcp::{DsnField, MpJoin, MpcVariant, MptcpOption};
use dataplane::wire::tcp::{TcpOption, TcpPacket};
use dataplane::wire::{checksum, classify, L4};
use std::collections::BTreeMap;

/// One TCP segment of the capture with its parsed MPTCP options.
struct Segment {
    frame: usize,
    src_port: u16,
    dst_port: u16,
    payload: Vec<u8>,
    options: Vec<(Vec<u8>, MptcpOption)>,
}

fn segments() -> Vec<Segment> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/linux-mptcp.pcap");
    let file = std::fs::File::open(path).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    let mut frame = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        frame += 1;
        let data = &pkt.data[..];
        let f = classify(data).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
        assert_eq!(
            f.l4,
            L4::Tcp,
            "frame {frame}: the capture filter was tcp port 8080"
        );
        let tcp = TcpPacket::parse(f.l4_bytes(data)).unwrap();
        let mut options = Vec::new();
        for opt in tcp.options() {
            match opt.unwrap_or_else(|e| panic!("frame {frame}: malformed TCP option: {e}")) {
                TcpOption::Mptcp(bytes) => {
                    let parsed = MptcpOption::parse(bytes)
                        .unwrap_or_else(|e| panic!("frame {frame}: {e}: {bytes:02x?}"));
                    options.push((bytes.to_vec(), parsed));
                }
                TcpOption::Unknown { kind, .. } => panic!("frame {frame}: unknown option {kind}"),
                _ => {}
            }
        }
        out.push(Segment {
            frame,
            src_port: tcp.src_port(),
            dst_port: tcp.dst_port(),
            payload: tcp.payload().to_vec(),
            options,
        });
    }
    out
}

#[test]
fn every_linux_option_parses_and_reemits_byte_for_byte() {
    let segs = segments();
    let mut by_subtype: BTreeMap<u8, usize> = BTreeMap::new();
    for s in &segs {
        for (bytes, opt) in &s.options {
            let mut buf = [0u8; 40];
            let n = opt.emit(&mut buf).unwrap();
            assert_eq!(&buf[..n], &bytes[..], "frame {}: {opt:?}", s.frame);
            assert_eq!(n, opt.len());
            *by_subtype.entry(opt.subtype()).or_default() += 1;
        }
    }
    // Everything Linux sent in these connections except MP_FAIL, which needs payload
    // corruption in flight (covered by the synthetic tests).
    for subtype in [0, 1, 2, 3, 4, 5, 7, 8] {
        assert!(
            by_subtype.contains_key(&subtype),
            "subtype {subtype} missing: {by_subtype:?}"
        );
    }
    assert!(by_subtype[&2] > 50, "DSS on most segments: {by_subtype:?}");
}

/// The keys of each MPTCP connection, from its MP_CAPABLE third ACK, in order.
fn connection_keys(segs: &[Segment]) -> Vec<(u64, u64)> {
    segs.iter()
        .flat_map(|s| &s.options)
        .filter_map(|(_, o)| match o {
            MptcpOption::MpCapable(c) => match c.variant {
                MpcVariant::Ack {
                    sender_key,
                    receiver_key,
                } => Some((sender_key, receiver_key)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn the_syn_ack_key_is_the_one_the_third_ack_echoes() {
    let segs = segments();
    let server_keys: Vec<u64> = segs
        .iter()
        .flat_map(|s| &s.options)
        .filter_map(|(_, o)| match o {
            MptcpOption::MpCapable(c) => match c.variant {
                MpcVariant::SynAck { sender_key } => Some(sender_key),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let keys = connection_keys(&segs);
    assert_eq!(keys.len(), 3);
    assert_eq!(server_keys, keys.iter().map(|k| k.1).collect::<Vec<_>>());
}

#[test]
fn join_tokens_and_hmacs_match_what_the_kernel_computed() {
    let segs = segments();
    let keys = connection_keys(&segs);
    let mut verified = 0;
    for (i, s) in segs.iter().enumerate() {
        let Some(MptcpOption::MpJoin(MpJoin::Syn {
            token,
            nonce: client_nonce,
            ..
        })) = s.options.first().map(|o| &o.1)
        else {
            continue;
        };
        // The client joins the server's connection: the token names the server's key.
        let (kc, ks) = *keys
            .iter()
            .find(|(_, ks)| crypto::derive(*ks).token == *token)
            .unwrap_or_else(|| panic!("frame {}: token {token:#x} matches no connection", s.frame));
        // The server's SYN/ACK and the client's third ACK on the same 4-tuple.
        let reply = |from_server: bool| {
            segs[i + 1..]
                .iter()
                .find(|r| {
                    let (a, b) = if from_server {
                        (r.dst_port, r.src_port)
                    } else {
                        (r.src_port, r.dst_port)
                    };
                    (a, b) == (s.src_port, s.dst_port)
                        && r.options
                            .iter()
                            .any(|o| matches!(o.1, MptcpOption::MpJoin(_)))
                })
                .unwrap()
        };
        let Some(MptcpOption::MpJoin(MpJoin::SynAck {
            hmac,
            nonce: server_nonce,
            ..
        })) = reply(true).options.first().map(|o| o.1)
        else {
            panic!("frame {}: no MP_JOIN SYN/ACK", s.frame)
        };
        let client = ConnKeys::new(kc, ks);
        assert!(client.verify_synack_hmac(*client_nonce, server_nonce, hmac));
        assert!(!client.verify_synack_hmac(*client_nonce, server_nonce, hmac ^ 1));
        let Some(MptcpOption::MpJoin(MpJoin::Ack { hmac: ack_hmac })) =
            reply(false).options.first().map(|o| o.1)
        else {
            panic!("frame {}: no MP_JOIN third ACK", s.frame)
        };
        let server = ConnKeys::new(ks, kc);
        assert!(server.verify_ack_hmac(server_nonce, *client_nonce, &ack_hmac));
        assert_eq!(client.ack_hmac(*client_nonce, server_nonce), ack_hmac);
        assert_eq!(server.synack_hmac(server_nonce, *client_nonce), hmac);
        verified += 1;
    }
    assert_eq!(verified, 6, "two joins in each of the three connections");
}

#[test]
fn add_addr_hmacs_verify_with_the_connections_keys() {
    let segs = segments();
    let keys = connection_keys(&segs);
    let (mut announced, mut echoed) = (0, 0);
    for s in &segs {
        for (_, o) in &s.options {
            let MptcpOption::AddAddr(a) = o else { continue };
            if a.is_echo() {
                echoed += 1;
                continue;
            }
            // Sent by the server (port 8080): it verifies with the client as "local".
            assert_eq!(s.src_port, 8080);
            let ok = keys
                .iter()
                .any(|&(kc, ks)| ConnKeys::new(kc, ks).verify_add_addr(a));
            assert!(
                ok,
                "frame {}: ADD_ADDR HMAC verifies with no connection's keys",
                s.frame
            );
            let forged = dataplane::wire::mptcp::AddAddr {
                addr_id: a.addr_id ^ 1,
                ..*a
            };
            assert!(!keys
                .iter()
                .any(|&(kc, ks)| ConnKeys::new(kc, ks).verify_add_addr(&forged)));
            announced += 1;
        }
    }
    assert!(
        announced >= 3 && echoed >= 3,
        "{announced} announced, {echoed} echoed"
    );
}

#[test]
fn the_first_data_byte_has_dsn_idsn_plus_one() {
    let segs = segments();
    let (kc, _) = connection_keys(&segs)[0];
    let first = segs
        .iter()
        .filter(|s| !s.payload.is_empty() && s.dst_port == 8080)
        .flat_map(|s| &s.options)
        .find_map(|(_, o)| match o {
            MptcpOption::Dss(d) => d.mapping,
            _ => None,
        })
        .unwrap();
    let DsnField::Bits64(dsn) = first.dsn else {
        panic!("Linux sends 64-bit DSNs")
    };
    assert_eq!(dsn, crypto::derive(kc).idsn + 1);
    assert_eq!(first.ssn, 1, "relative subflow sequence of the first byte");
}

#[test]
fn every_dss_checksum_in_the_capture_verifies() {
    // Linux maps a whole send (here 4000 or 4096 bytes) at once and repeats the mapping
    // on each segment that carries part of it; gather each mapping's bytes, in order,
    // then check its checksum over all of them.
    let segs = segments();
    let mut pending: BTreeMap<(u16, u16, u64), Vec<u8>> = BTreeMap::new();
    let mut checked = 0;
    for s in segs.iter().filter(|s| !s.payload.is_empty()) {
        for (_, o) in &s.options {
            let MptcpOption::Dss(d) = o else { continue };
            let Some(m) = d.mapping else { continue };
            let (Some(csum), DsnField::Bits64(dsn)) = (m.checksum, m.dsn) else {
                continue;
            };
            let bytes = pending
                .entry((s.src_port, s.dst_port, dsn.get()))
                .or_default();
            bytes.extend_from_slice(&s.payload);
            if bytes.len() < usize::from(m.data_len) {
                continue;
            }
            assert_eq!(bytes.len(), usize::from(m.data_len), "frame {}", s.frame);
            let sum = checksum::sum(bytes);
            assert!(
                crypto::dss_checksum_ok(dsn, m.ssn, m.data_len, csum, sum),
                "frame {}: DSS checksum {csum:#06x} does not verify",
                s.frame
            );
            assert!(!crypto::dss_checksum_ok(
                dsn + 1,
                m.ssn,
                m.data_len,
                csum,
                sum
            ));
            checked += 1;
        }
    }
    assert_eq!(
        checked, 2,
        "one checksummed mapping each way in connection 2"
    );
}
