//! Fuzzes the frame path: classification, every view over the result, the TCP option
//! walk with MPTCP option parsing, and the in-place responders. Properties: no panic,
//! accepted offsets inside the frame, responders' output classifies.
#![no_main]

use dataplane::wire::mptcp::MptcpOption;
use dataplane::wire::tcp::{TcpOption, TcpPacket};
use dataplane::wire::{arp, classify, icmp, icmpv6, MacAddr, L4};
use libfuzzer_sys::fuzz_target;

const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fuzz_target!(|frame: &[u8]| {
    if let Ok(f) = classify(frame) {
        assert!(f.l4_offset + f.l4_len <= frame.len());
        if f.l4 == L4::Tcp {
            let tcp = TcpPacket::parse(f.l4_bytes(frame)).expect("classify validated TCP");
            for opt in tcp.options() {
                if let Ok(TcpOption::Mptcp(bytes)) = opt {
                    if let Ok(o) = MptcpOption::parse(bytes) {
                        let _ = o.valid_on(tcp.flags(), tcp.payload().len());
                    }
                }
            }
        }
    }
    let mut copy = frame.to_vec();
    let _ = arp::make_reply_in_place(&mut copy, ME);
    copy.copy_from_slice(frame);
    let _ = icmp::echo_reply_in_place(&mut copy, ME);
    copy.copy_from_slice(frame);
    let _ = icmpv6::echo_reply_in_place(&mut copy, ME);
    copy.copy_from_slice(frame);
    copy.extend_from_slice(&[0; 8]);
    if let Ok(n) = icmpv6::neighbor_advert_in_place(&mut copy, ME) {
        assert_eq!(classify(&copy[..n]).map(|c| c.l4), Ok(L4::Icmpv6));
    }
});
