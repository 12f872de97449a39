//! Fuzzes the MPTCP option parser. Properties: no panic; an accepted option re-emits to
//! its own length and parses back to the same value; the aligned form is NOP-padded.
#![no_main]

use dataplane::wire::mptcp::MptcpOption;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|opt: &[u8]| {
    let Ok(o) = MptcpOption::parse(opt) else {
        return;
    };
    let mut buf = [0u8; 40];
    let n = o.emit(&mut buf).expect("every option fits 40 bytes");
    assert_eq!(n, usize::from(opt[1]));
    assert_eq!(MptcpOption::parse(&buf[..n]), Ok(o));
    let aligned = o.emit_aligned(&mut buf).expect("fits");
    assert!(aligned % 4 == 0 && buf[n..aligned].iter().all(|&b| b == 1));
});
