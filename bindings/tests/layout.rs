//! Pins the DPDK 22.11 x86_64 `rte_mbuf` layout that `dpdk_sys::inline` relies on:
//! if bindgen or DPDK ever lay the struct out differently, this fails before any
//! accessor reads the wrong bytes.
#![cfg(not(dpdk_sys_stub))]

use core::mem::{align_of, offset_of, size_of};
use dpdk_sys::{rte_mbuf, rte_mbuf__bindgen_ty_1, rte_mbuf__bindgen_ty_2};

#[test]
fn rte_mbuf_matches_dpdk_22_11_x86_64() {
    assert_eq!(size_of::<rte_mbuf>(), 128);
    assert_eq!(align_of::<rte_mbuf>(), 64);

    assert_eq!(offset_of!(rte_mbuf, buf_addr), 0);
    assert_eq!(offset_of!(rte_mbuf, data_off), 16);
    assert_eq!(offset_of!(rte_mbuf, refcnt), 18);
    assert_eq!(offset_of!(rte_mbuf, nb_segs), 20);
    assert_eq!(offset_of!(rte_mbuf, port), 22);
    assert_eq!(offset_of!(rte_mbuf, ol_flags), 24);
    assert_eq!(offset_of!(rte_mbuf, __bindgen_anon_1), 32);
    assert_eq!(offset_of!(rte_mbuf__bindgen_ty_1, packet_type), 0);
    assert_eq!(offset_of!(rte_mbuf, pkt_len), 36);
    assert_eq!(offset_of!(rte_mbuf, data_len), 40);
    assert_eq!(offset_of!(rte_mbuf, __bindgen_anon_2), 44);
    assert_eq!(offset_of!(rte_mbuf__bindgen_ty_2, hash), 0);
    assert_eq!(offset_of!(rte_mbuf, buf_len), 54);
    assert_eq!(offset_of!(rte_mbuf, next), 64);
}

#[test]
fn accessed_fields_have_dpdk_widths() {
    let m = rte_mbuf::default();
    let widths = [
        size_of_val(&m.data_off),
        size_of_val(&m.refcnt),
        size_of_val(&m.nb_segs),
        size_of_val(&m.port),
        size_of_val(&m.data_len),
        size_of_val(&m.buf_len),
    ];
    assert_eq!(widths, [2; 6]);
    assert_eq!(size_of_val(&m.ol_flags), 8);
    assert_eq!(size_of_val(&m.pkt_len), 4);
    // SAFETY: reading plain integers out of a zeroed union.
    let (ptype, rss) = unsafe { (m.__bindgen_anon_1.packet_type, m.__bindgen_anon_2.hash.rss) };
    assert_eq!((size_of_val(&ptype), size_of_val(&rss)), (4, 4));
}

#[test]
fn inline_accessors_read_the_right_fields() {
    let mut buf = [0u8; 256];
    let mut m = rte_mbuf {
        buf_addr: buf.as_mut_ptr().cast(),
        buf_len: 256,
        data_off: 128,
        data_len: 60,
        pkt_len: 60,
        refcnt: 3,
        nb_segs: 1,
        port: 7,
        ol_flags: 1 << 1,
        ..Default::default()
    };
    m.__bindgen_anon_1.packet_type = 0x11;
    m.__bindgen_anon_2.hash.rss = 0xdead_beef;
    let p: *mut rte_mbuf = &mut m;
    // SAFETY: `p` points to a live, initialised mbuf whose buffer is `buf`.
    unsafe {
        use dpdk_sys::inline::*;
        assert_eq!(data_ptr(p), buf.as_mut_ptr().add(128));
        assert_eq!((headroom(p), tailroom(p), buf_len(p)), (128, 68, 256));
        assert_eq!((data_len(p), pkt_len(p), nb_segs(p)), (60, 60, 1));
        assert_eq!((refcnt(p), port(p), ol_flags(p)), (3, 7, 2));
        assert_eq!((packet_type(p), rss_hash(p)), (0x11, 0xdead_beef));
        assert!(next(p).is_null());
        set_data_off(p, 100);
        set_data_len(p, 88);
        set_pkt_len(p, 88);
        assert_eq!((data_off(p), data_len(p), pkt_len(p)), (100, 88, 88));
    }
}
