//! TCP options: a strict iterator over received options and a budgeted builder for
//! options to send, laid out the way Linux lays them out.

use crate::seq::TcpSeq;
use crate::wire::field::{be16, be32, set_be16, set_be32};
use crate::wire::mptcp::{self, DssBytes, MptcpOption, Peeked};
use crate::wire::WireError;

/// Most option bytes a TCP header can carry.
pub const MAX_OPTIONS_LEN: usize = 40;

/// Option kinds.
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Length of Linux's timestamps layout: NOP, NOP, then the 10-byte option.
const ALIGNED_TIMESTAMPS_LEN: usize = 12;
/// The first four bytes of that layout.
const ALIGNED_TIMESTAMPS_HEAD: [u8; 4] = [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10];

/// One received TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Maximum segment size.
    Mss(u16),
    /// Window scale shift.
    WindowScale(u8),
    /// SACK permitted.
    SackPermitted,
    /// SACK blocks.
    Sack(SackBlocks<'a>),
    /// Timestamps.
    Timestamps {
        /// The sender's timestamp value.
        tsval: u32,
        /// The echoed timestamp.
        tsecr: u32,
    },
    /// An MPTCP option (kind 30), kind and length bytes included; decode it with
    /// [`MptcpOption::parse`].
    Mptcp(&'a [u8]),
    /// Another option, skipped by mpgw.
    Unknown {
        /// Option kind.
        kind: u8,
        /// The bytes after kind and length.
        data: &'a [u8],
    },
}

/// The blocks of a SACK option: 1 to 4 `[left, right)` edge pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SackBlocks<'a>(&'a [u8]);

impl<'a> SackBlocks<'a> {
    /// Number of blocks.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    /// True when there are no blocks (never for a parsed option).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The blocks as `(left, right)` edges.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (TcpSeq, TcpSeq)> + 'a {
        self.0
            .chunks_exact(8)
            .map(|b| (TcpSeq::new(be32(b, 0)), TcpSeq::new(be32(b, 4))))
    }
}

/// Iterator over the options of a TCP header, following Linux's walk: stops at
/// end-of-list; skips NOPs; on a length below 2 or past the header it yields one
/// [`WireError::BadOption`] and stops; a known option with a wrong length yields
/// [`WireError::BadOption`] and the walk continues after it (Linux ignores such options).
#[derive(Clone, Debug)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over the option bytes `opts` (the header after its 20 fixed bytes).
    #[inline]
    pub fn new(opts: &'a [u8]) -> Self {
        TcpOptions { rest: opts }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>, WireError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        // Linux leads almost every segment with NOP, NOP, timestamps: one compare takes
        // the three steps the general walk below would (and yields what it would).
        if let Some((ts, rest)) = self.rest.split_first_chunk::<ALIGNED_TIMESTAMPS_LEN>() {
            if ts[..4] == ALIGNED_TIMESTAMPS_HEAD {
                self.rest = rest;
                return Some(Ok(TcpOption::Timestamps {
                    tsval: be32(ts, 4),
                    tsecr: be32(ts, 8),
                }));
            }
        }
        loop {
            let (&k, tail) = self.rest.split_first()?;
            match k {
                kind::EOL => {
                    self.rest = &[];
                    return None;
                }
                kind::NOP => self.rest = tail,
                _ => break,
            }
        }
        let len = match self.rest.get(1) {
            Some(&l) if l >= 2 && usize::from(l) <= self.rest.len() => usize::from(l),
            _ => {
                self.rest = &[];
                return Some(Err(WireError::BadOption));
            }
        };
        let (opt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(decode(opt))
    }
}

/// Decodes one option whose length byte is known to match `opt.len()` (≥ 2).
#[inline]
fn decode(opt: &[u8]) -> Result<TcpOption<'_>, WireError> {
    let data = &opt[2..];
    let ok = match (opt[0], opt.len()) {
        (kind::MSS, 4) => TcpOption::Mss(be16(opt, 2)),
        (kind::WINDOW_SCALE, 3) => TcpOption::WindowScale(opt[2]),
        (kind::SACK_PERMITTED, 2) => TcpOption::SackPermitted,
        (kind::TIMESTAMPS, 10) => TcpOption::Timestamps {
            tsval: be32(opt, 2),
            tsecr: be32(opt, 6),
        },
        (kind::SACK, n) if n >= 10 && (n - 2) % 8 == 0 => TcpOption::Sack(SackBlocks(data)),
        (mptcp::KIND, _) => TcpOption::Mptcp(opt),
        (
            kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::TIMESTAMPS | kind::SACK,
            _,
        ) => return Err(WireError::BadOption),
        (k, _) => TcpOption::Unknown { kind: k, data },
    };
    Ok(ok)
}

/// What the established-state fast path needs from a segment's options, picked out in
/// one [`TcpOptions`] walk: timestamps, SACK blocks and the MPTCP DSS. Anything else is
/// only noted, for the caller to hand the segment to a full walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastPathOptions<'a> {
    /// `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks.
    pub sack: Option<SackBlocks<'a>>,
    /// The MPTCP DSS option, checked; [`DssBytes::decode`] decodes it.
    pub dss: Option<DssBytes<'a>>,
    /// True when another option was present: MSS, window scale, SACK-permitted, an MPTCP
    /// option other than DSS, or an unknown kind.
    pub others: bool,
    /// Options refused as malformed (TCP or MPTCP), which Linux ignores and counts.
    pub malformed: u8,
}

impl<'a> FastPathOptions<'a> {
    /// Walks the option bytes `opts` (the header after its 20 fixed bytes) once. When an
    /// option occurs more than once the last one counts, as in Linux.
    #[inline]
    pub fn parse(opts: &'a [u8]) -> Self {
        let mut f = FastPathOptions::default();
        for opt in TcpOptions::new(opts) {
            match opt {
                Ok(TcpOption::Timestamps { tsval, tsecr }) => f.timestamps = Some((tsval, tsecr)),
                Ok(TcpOption::Mptcp(bytes)) => match MptcpOption::peek(bytes) {
                    Ok(Peeked::Dss(dss)) => f.dss = Some(dss),
                    Ok(Peeked::Other(_)) => f.others = true,
                    Err(_) => f.malformed += 1,
                },
                Ok(TcpOption::Sack(blocks)) => f.sack = Some(blocks),
                Ok(_) => f.others = true,
                Err(_) => f.malformed += 1,
            }
        }
        f
    }
}

/// Options to send, built within the 40-byte budget, in Linux's layout: MSS, then
/// SACK-permitted/timestamps, window scale, SACK blocks, MPTCP; each option 4-byte
/// aligned with NOPs as Linux does.
#[derive(Clone, Copy, Debug)]
pub struct OptionsBuf {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: usize,
}

impl Default for OptionsBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl OptionsBuf {
    /// No options.
    #[inline]
    pub const fn new() -> Self {
        OptionsBuf {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
        }
    }

    /// Bytes used.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no option was added.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still free in the 40-byte budget.
    #[inline]
    pub fn remaining(&self) -> usize {
        MAX_OPTIONS_LEN - self.len
    }

    /// Bytes used, rounded up to a multiple of 4 (what the header carries).
    #[inline]
    pub fn padded_len(&self) -> usize {
        self.len.next_multiple_of(4)
    }

    /// The option bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Takes `n` bytes from the budget; [`WireError::NoRoom`] (nothing taken) if they
    /// do not fit.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::NoRoom);
        }
        let start = self.len;
        self.len += n;
        Ok(&mut self.bytes[start..start + n])
    }

    /// MSS (4 bytes).
    #[inline]
    pub fn push_mss(&mut self, mss: u16) -> Result<(), WireError> {
        let b = self.take(4)?;
        b[0] = kind::MSS;
        b[1] = 4;
        set_be16(b, 2, mss);
        Ok(())
    }

    /// Timestamps (12 bytes): preceded by SACK-permitted when `sack_permitted` (a SYN),
    /// else by two NOPs.
    #[inline]
    pub fn push_timestamps(
        &mut self,
        tsval: u32,
        tsecr: u32,
        sack_permitted: bool,
    ) -> Result<(), WireError> {
        let b = self.take(12)?;
        b[..2].copy_from_slice(&if sack_permitted {
            [kind::SACK_PERMITTED, 2]
        } else {
            [kind::NOP, kind::NOP]
        });
        b[2] = kind::TIMESTAMPS;
        b[3] = 10;
        set_be32(b, 4, tsval);
        set_be32(b, 8, tsecr);
        Ok(())
    }

    /// SACK-permitted without timestamps (4 bytes: NOP, NOP, SACK-permitted).
    #[inline]
    pub fn push_sack_permitted(&mut self) -> Result<(), WireError> {
        self.take(4)?
            .copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
        Ok(())
    }

    /// Window scale (4 bytes: NOP, window scale).
    #[inline]
    pub fn push_window_scale(&mut self, shift: u8) -> Result<(), WireError> {
        self.take(4)?
            .copy_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
        Ok(())
    }

    /// SACK blocks (NOP, NOP, then 2 + 8 per block); 1 to 4 blocks, else
    /// [`WireError::BadOption`].
    #[inline]
    pub fn push_sack(&mut self, blocks: &[(TcpSeq, TcpSeq)]) -> Result<(), WireError> {
        if blocks.is_empty() || blocks.len() > 4 {
            return Err(WireError::BadOption);
        }
        let n = 2 + 8 * blocks.len();
        let b = self.take(2 + n)?;
        // At most 34: fits the length byte.
        b[..4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK, n as u8]);
        for (i, (left, right)) in blocks.iter().enumerate() {
            set_be32(b, 4 + 8 * i, left.get());
            set_be32(b, 8 + 8 * i, right.get());
        }
        Ok(())
    }

    /// An MPTCP option, followed by the NOPs Linux pads it with to 4-byte alignment.
    #[inline]
    pub fn push_mptcp(&mut self, opt: &MptcpOption) -> Result<(), WireError> {
        let n = opt.aligned_len();
        let b = self.take(n)?;
        opt.emit_aligned(b).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::Dsn;
    use crate::wire::mptcp::{DsnField, Dss};

    fn all(opts: &[u8]) -> Vec<Result<TcpOption<'_>, WireError>> {
        TcpOptions::new(opts).collect()
    }

    #[test]
    fn linux_syn_options() {
        // mss 1460, sackOK, TS val 1 ecr 0, nop, wscale 7, then MP_CAPABLE v1 SYN.
        let opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7, 30, 4, 0x01, 0x81,
        ];
        let got = all(&opts);
        let want = [
            Ok(TcpOption::Mss(1460)),
            Ok(TcpOption::SackPermitted),
            Ok(TcpOption::Timestamps { tsval: 1, tsecr: 0 }),
            Ok(TcpOption::WindowScale(7)),
            Ok(TcpOption::Mptcp(&opts[20..24])),
        ];
        assert_eq!(got, want);

        let mut b = OptionsBuf::new();
        b.push_mss(1460).unwrap();
        b.push_timestamps(1, 0, true).unwrap();
        b.push_window_scale(7).unwrap();
        let mpc = MptcpOption::parse(&opts[20..]).unwrap();
        b.push_mptcp(&mpc).unwrap();
        assert_eq!(b.as_bytes(), &opts[..]);
        assert_eq!((b.len(), b.remaining(), b.padded_len()), (24, 16, 24));
    }

    #[test]
    fn sack_blocks_and_unknown() {
        let opts = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9, 254, 3, 7, 0,
        ];
        let got = all(&opts);
        assert_eq!(got.len(), 2);
        let Ok(TcpOption::Sack(s)) = got[0] else {
            panic!("{got:?}")
        };
        let blocks: Vec<_> = s.iter().collect();
        assert_eq!(
            blocks,
            [
                (TcpSeq::new(1), TcpSeq::new(2)),
                (TcpSeq::new(u32::MAX), TcpSeq::new(9))
            ]
        );
        assert_eq!(
            got[1],
            Ok(TcpOption::Unknown {
                kind: 254,
                data: &[7]
            })
        );

        let mut b = OptionsBuf::new();
        b.push_sack(&blocks).unwrap();
        assert_eq!(b.as_bytes(), &opts[..20]);
        assert_eq!(b.push_sack(&[]), Err(WireError::BadOption));
    }

    #[test]
    fn malformed_options_stop_or_skip_like_linux() {
        // Length 1: stop after reporting.
        assert_eq!(all(&[2, 1, 0, 0, 2, 4, 1, 1]), [Err(WireError::BadOption)]);
        // Past the end: stop after reporting.
        assert_eq!(all(&[1, 8, 10, 0, 0]), [Err(WireError::BadOption)]);
        // Lone kind byte at the end.
        assert_eq!(all(&[1, 1, 1, 2]), [Err(WireError::BadOption)]);
        // Known kind, wrong length: reported and skipped, walk continues.
        assert_eq!(
            all(&[2, 3, 0, 3, 3, 2]),
            [Err(WireError::BadOption), Ok(TcpOption::WindowScale(2))]
        );
        assert_eq!(
            all(&[5, 9, 0, 0, 0, 0, 0, 0, 0]),
            [Err(WireError::BadOption)]
        );
        // End of list stops, whatever follows.
        assert_eq!(all(&[0, 2, 1]), []);
    }

    /// What [`FastPathOptions::parse`] must find, from the general iterator and parser.
    fn reference(opts: &[u8]) -> (FastPathOptions<'_>, Option<Dss>) {
        let mut f = FastPathOptions::default();
        let mut dss = None;
        for opt in all(opts) {
            match opt {
                Ok(TcpOption::Timestamps { tsval, tsecr }) => f.timestamps = Some((tsval, tsecr)),
                Ok(TcpOption::Sack(blocks)) => f.sack = Some(blocks),
                Ok(TcpOption::Mptcp(bytes)) => match MptcpOption::parse(bytes) {
                    Ok(MptcpOption::Dss(d)) => dss = Some(d),
                    Ok(_) => f.others = true,
                    Err(_) => f.malformed += 1,
                },
                Ok(_) => f.others = true,
                Err(_) => f.malformed += 1,
            }
        }
        (f, dss)
    }

    fn fast(opts: &[u8]) -> (FastPathOptions<'_>, Option<Dss>) {
        let f = FastPathOptions::parse(opts);
        (
            FastPathOptions { dss: None, ..f },
            f.dss.map(DssBytes::decode),
        )
    }

    #[test]
    fn fast_path_picks_timestamps_sack_and_dss() {
        // NOP NOP TS, then DSS (32-bit DATA_ACK, 64-bit DSN mapping), NOP NOP.
        let mut opts = vec![1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        opts.extend_from_slice(&[30, 22, 0x20, 0x0d, 0, 0, 0, 5]);
        opts.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 5, 0x78, 1, 1]);
        let (f, dss) = fast(&opts);
        assert_eq!(f.timestamps, Some((7, 9)));
        assert_eq!((f.sack, f.others, f.malformed), (None, false, 0));
        let dss = dss.unwrap();
        assert_eq!(dss.data_ack, Some(DsnField::Bits32(5)));
        let m = dss.mapping.unwrap();
        assert_eq!(
            (m.dsn, m.ssn, m.data_len),
            (DsnField::Bits64(Dsn::new(256)), 1, 1400)
        );
        assert_eq!(fast(&opts), reference(&opts));

        // SACK, an MP_PRIO, an unknown kind, a DSS too short for its flags.
        let opts = [
            1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 30, 3, 0x51, 254, 2, 30, 8, 0x20, 0x01, 0, 0,
        ];
        let (f, dss) = fast(&opts);
        assert_eq!(f.sack.map(|s| s.len()), Some(1));
        assert_eq!((f.others, f.malformed, dss), (true, 1, None));
        assert_eq!(fast(&opts), reference(&opts));

        // Timestamps cut short: not the aligned form, and past the end.
        let opts = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0];
        assert_eq!(fast(&opts).0.malformed, 1);
        assert_eq!(fast(&opts), reference(&opts));
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_with_the_general_walk(
            opts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(1u8),
                    proptest::strategy::Just(8u8),
                    proptest::strategy::Just(10u8),
                    proptest::strategy::Just(30u8),
                    proptest::strategy::Just(0x20u8),
                    0u8..=40,
                    proptest::num::u8::ANY,
                ],
                0..=MAX_OPTIONS_LEN,
            )
        ) {
            proptest::prop_assert_eq!(fast(&opts), reference(&opts));
        }
    }

    #[test]
    fn budget_is_forty_bytes() {
        let mut b = OptionsBuf::new();
        b.push_timestamps(1, 2, false).unwrap();
        let blocks = [(TcpSeq::new(1), TcpSeq::new(2)); 3];
        b.push_sack(&blocks).unwrap();
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.push_window_scale(1), Err(WireError::NoRoom));
        assert_eq!(b.len(), 40);
    }
}
