//! Sequence-number arithmetic for the two sequence spaces of MPTCP.
//!
//! [`TcpSeq`] is a 32-bit subflow (TCP) sequence number, [`Dsn`] a 64-bit MPTCP data
//! sequence number. Both wrap, so neither implements `PartialOrd`: order is only
//! meaningful between nearby numbers and is asked with [`TcpSeq::before`] and friends
//! (RFC 793 §3.3 / RFC 1982 serial-number arithmetic). Offsets and lengths are the plain
//! integer of the space's width (`u32`, `u64`): a sequence number plus an offset is a
//! sequence number, two sequence numbers only have a distance, and a `TcpSeq` and a
//! `Dsn` never combine — converting between the spaces goes through a mapping.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

macro_rules! seq_type {
    ($(#[$doc:meta])* $name:ident, $int:ty, $signed:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name($int);

        impl $name {
            /// The sequence number with raw value `v`.
            #[inline]
            pub const fn new(v: $int) -> Self {
                Self(v)
            }

            /// The raw value.
            #[inline]
            pub const fn get(self) -> $int {
                self.0
            }

            /// How far `self` lies after `base`, modulo the space: `self - base`.
            #[inline]
            pub const fn offset_from(self, base: Self) -> $int {
                self.0.wrapping_sub(base.0)
            }

            /// Signed distance `self - other`, negative when `self` is before `other`.
            #[inline]
            pub const fn signed_diff(self, other: Self) -> $signed {
                self.0.wrapping_sub(other.0) as $signed
            }

            /// True when `self` comes strictly before `other`.
            #[inline]
            pub const fn before(self, other: Self) -> bool {
                self.signed_diff(other) < 0
            }

            /// True when `self` comes before `other` or equals it.
            #[inline]
            pub const fn before_eq(self, other: Self) -> bool {
                self.signed_diff(other) <= 0
            }

            /// True when `self` comes strictly after `other`.
            #[inline]
            pub const fn after(self, other: Self) -> bool {
                self.signed_diff(other) > 0
            }

            /// True when `self` comes after `other` or equals it.
            #[inline]
            pub const fn after_eq(self, other: Self) -> bool {
                self.signed_diff(other) >= 0
            }

            /// The later of the two.
            #[inline]
            pub const fn latest(self, other: Self) -> Self {
                if self.after(other) {
                    self
                } else {
                    other
                }
            }

            /// The earlier of the two.
            #[inline]
            pub const fn earliest(self, other: Self) -> Self {
                if self.before(other) {
                    self
                } else {
                    other
                }
            }

            /// True when `self` lies in the half-open window `[start, start + len)`.
            #[inline]
            pub const fn in_window(self, start: Self, len: $int) -> bool {
                self.offset_from(start) < len
            }
        }

        impl Add<$int> for $name {
            type Output = Self;

            /// Advances by `n`, wrapping.
            #[inline]
            fn add(self, n: $int) -> Self {
                Self(self.0.wrapping_add(n))
            }
        }

        impl AddAssign<$int> for $name {
            #[inline]
            fn add_assign(&mut self, n: $int) {
                self.0 = self.0.wrapping_add(n);
            }
        }

        impl Sub<$int> for $name {
            type Output = Self;

            /// Goes back by `n`, wrapping.
            #[inline]
            fn sub(self, n: $int) -> Self {
                Self(self.0.wrapping_sub(n))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

seq_type!(
    /// A 32-bit TCP (subflow) sequence number.
    TcpSeq,
    u32,
    i32
);

seq_type!(
    /// A 64-bit MPTCP data sequence number (DSN), also used for DATA_ACKs.
    Dsn,
    u64,
    i64
);

impl Dsn {
    /// The low 32 bits, as carried by a 32-bit DSN or DATA_ACK.
    #[inline]
    pub const fn low32(self) -> u32 {
        self.0 as u32
    }

    /// Expands a 32-bit DSN or DATA_ACK to the 64-bit value with those low bits that lies
    /// nearest `expected` (within −2³¹..2³¹), so it wraps correctly in both directions.
    #[inline]
    pub const fn expand32(low32: u32, expected: Dsn) -> Dsn {
        let delta = low32.wrapping_sub(expected.low32()) as i32;
        Dsn(expected.0.wrapping_add(delta as i64 as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_wrap() {
        let a = TcpSeq::new(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b.get(), 4);
        assert!(a.before(b) && b.after(a) && a.before_eq(a) && a.after_eq(a));
        assert!(!a.before(a) && !a.after(a));
        assert_eq!(
            (b.offset_from(a), b.signed_diff(a), a.signed_diff(b)),
            (10, 10, -10)
        );
        assert_eq!((a.latest(b), a.earliest(b)), (b, a));
        assert!(TcpSeq::new(2).in_window(a, 10) && !b.in_window(a, 10));
        let mut c = b;
        c += 1;
        assert_eq!(c - 11, a);
        assert_eq!(Dsn::new(0).signed_diff(Dsn::new(u64::MAX)), 1);
        assert_eq!(Dsn::new(7).to_string(), "7");
    }

    #[test]
    fn expand32_known_cases() {
        let idsn = Dsn::new(0x17c1_5fa7_d0f7_d6ef);
        assert_eq!(Dsn::expand32(0xd0f7_d6f0, idsn), idsn + 1);
        // Across a 32-bit wrap, forwards and backwards.
        let near = Dsn::new(0x0000_0001_ffff_fff0);
        assert_eq!(Dsn::expand32(0x10, near), Dsn::new(0x0000_0002_0000_0010));
        let after = Dsn::new(0x0000_0002_0000_0010);
        assert_eq!(
            Dsn::expand32(0xffff_fff0, after),
            Dsn::new(0x0000_0001_ffff_fff0)
        );
        // Near the top of the 64-bit space.
        assert_eq!(Dsn::expand32(5, Dsn::new(u64::MAX - 2)), Dsn::new(5));
    }

    proptest! {
        #[test]
        fn expand32_is_nearest(expected: u64, delta in -(1i64 << 31)..(1i64 << 31)) {
            let expected = Dsn::new(expected);
            let actual = Dsn::new(expected.get().wrapping_add(delta as u64));
            prop_assert_eq!(Dsn::expand32(actual.low32(), expected), actual);
        }

        #[test]
        fn order_is_antisymmetric(a: u32, b: u32) {
            let (a, b) = (TcpSeq::new(a), TcpSeq::new(b));
            prop_assert!(!(a.before(b) && b.before(a)));
            prop_assert_eq!(a.after(b), b.before(a));
            if a != b && a.signed_diff(b) != i32::MIN {
                prop_assert!(a.before(b) ^ b.before(a));
            }
        }
    }
}
