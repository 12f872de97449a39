//! A minimal pcapng writer (draft-ietf-opsawg-pcapng): one section header, interface
//! descriptions (Ethernet, nanosecond timestamps) and enhanced packet blocks with the
//! direction flag.
//!
//! Written here rather than through DPDK's `rte_pcapng`: that library formats mbufs
//! (it would need each captured copy back in an mbuf from a pool, on the control
//! thread) and writes to a file descriptor, while the frames here are already plain
//! byte vectors; the format needs only the three block types below, and a pure-Rust
//! writer is unit-tested without EAL.

use std::io::{self, Write};

/// Block types.
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
/// Byte-order magic of the section header.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u16 = 1;
/// Option codes.
const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Which way a packet went (the `epb_flags` direction bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Inbound (received).
    Inbound,
    /// Outbound (sent).
    Outbound,
}

/// Writes a pcapng section into `W`.
pub struct Writer<W: Write> {
    out: W,
    interfaces: u32,
    written: u64,
}

/// Appends option `code` with `value`, padded to 32 bits.
fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&value[..usize::from(len)]);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

impl<W: Write> Writer<W> {
    /// Starts a section written by application `app`.
    pub fn new(out: W, app: &str) -> io::Result<Self> {
        let mut w = Self {
            out,
            interfaces: 0,
            written: 0,
        };
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes()); // major
        body.extend_from_slice(&0u16.to_le_bytes()); // minor
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
        option(&mut body, SHB_USERAPPL, app.as_bytes());
        option(&mut body, OPT_END, &[]);
        w.block(SHB, &body)?;
        Ok(w)
    }

    /// Describes an Ethernet interface named `name` whose packets are cut at `snaplen`
    /// bytes (0: no limit); returns its id for [`Writer::packet`].
    pub fn interface(&mut self, name: &str, snaplen: u32) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        option(&mut body, IF_NAME, name.as_bytes());
        option(&mut body, IF_TSRESOL, &[9]); // 10^-9 s
        option(&mut body, OPT_END, &[]);
        self.block(IDB, &body)?;
        self.interfaces += 1;
        Ok(self.interfaces - 1)
    }

    /// Writes one packet of interface `iface`: `data` (its first bytes), its length
    /// on the wire `orig_len`, seen at `ts_ns` (ns since the Unix epoch) going `dir`.
    pub fn packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        dir: Direction,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        if iface >= self.interfaces {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pcapng: no interface {iface}"),
            ));
        }
        let caplen = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng: packet too big"))?;
        let mut body = Vec::with_capacity(data.len() + 40);
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts_ns as u32).to_le_bytes());
        body.extend_from_slice(&caplen.to_le_bytes());
        body.extend_from_slice(&orig_len.max(caplen).to_le_bytes());
        body.extend_from_slice(data);
        pad(&mut body);
        let flags: u32 = match dir {
            Direction::Inbound => 0b01,
            Direction::Outbound => 0b10,
        };
        option(&mut body, EPB_FLAGS, &flags.to_le_bytes());
        option(&mut body, OPT_END, &[]);
        self.block(EPB, &body)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    /// Writes a block: type, total length, `body` (32-bit aligned), total length.
    fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let total = u32::try_from(body.len() + 12)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng: block too big"))?;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&total.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&total.to_le_bytes())?;
        self.written += u64::from(total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of a pcapng byte stream: (type, body), checking both length fields.
    fn blocks(mut bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let kind = u32_at(bytes, 0);
            let len = u32_at(bytes, 4) as usize;
            assert_eq!(len % 4, 0, "blocks are 32-bit aligned");
            assert_eq!(u32_at(bytes, len - 4), len as u32, "trailing length");
            out.push((kind, bytes[8..len - 4].to_vec()));
            bytes = &bytes[len..];
        }
        out
    }

    /// An MPTCP data segment: Ethernet/IPv4/TCP with a DSS option (DSN 0x1122334455667788,
    /// subflow seq 1, data-level length 4, no checksum) and 4 bytes of payload.
    pub(crate) fn mptcp_frame() -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let tcp_opts: [u8; 20] = [
            30, 18, 0x20, 0x0c, // DSS: mapping present (M) with an 8-byte DSN (m)
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // DSN
            0, 0, 0, 1, // subflow sequence number
            0, 4, // data-level length
            1, 1, // NOP NOP
        ];
        let tcp_len = 20 + tcp_opts.len();
        let total = 20 + tcp_len + 4;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&[192, 0, 2, 2, 192, 0, 2, 1]);
        let sum = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut tcp = vec![0xc0, 0x00, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1];
        tcp.push(((tcp_len / 4) << 4) as u8);
        tcp.extend_from_slice(&[0x18, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(&tcp_opts);
        tcp.extend_from_slice(b"data");
        let mut pseudo = vec![192, 0, 2, 2, 192, 0, 2, 1, 0, 6];
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let sum = checksum(&tcp, sum_of(&pseudo));
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f
    }

    fn sum_of(b: &[u8]) -> u32 {
        b.chunks(2)
            .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
            .sum()
    }

    fn checksum(b: &[u8], init: u32) -> u16 {
        let mut s = init + sum_of(b);
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), "mpgw test").unwrap();
        let id = w.interface("down0", 256).unwrap();
        let frame = mptcp_frame();
        w.packet(
            id,
            1_700_000_000_123_456_789,
            Direction::Inbound,
            frame.len() as u32,
            &frame,
        )
        .unwrap();
        w.packet(
            id,
            1_700_000_000_223_456_789,
            Direction::Outbound,
            1514,
            &frame[..60],
        )
        .unwrap();
        assert!(
            w.packet(7, 0, Direction::Inbound, 1, &[0]).is_err(),
            "unknown interface"
        );
        let written = w.written();
        let bytes = w.finish().unwrap();
        assert_eq!(written, bytes.len() as u64);
        bytes
    }

    #[test]
    fn blocks_parse_back() {
        let bytes = sample();
        let b = blocks(&bytes);
        let kinds: Vec<u32> = b.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec![SHB, IDB, EPB, EPB]);
        assert_eq!(&b[0].1[..4], &BYTE_ORDER_MAGIC.to_le_bytes());
        // IDB: Ethernet, snaplen 256, name and ns resolution.
        assert_eq!(&b[1].1[..8], &[1, 0, 0, 0, 0, 1, 0, 0]);
        assert!(b[1].1.windows(5).any(|w| w == b"down0"));
        assert!(b[1].1.windows(5).any(|w| w == [9, 0, 1, 0, 9]));
        // EPB: interface 0, timestamp, lengths, data, direction flag.
        let epb = &b[2].1;
        let u32_at = |i: usize| u32::from_le_bytes(epb[i..i + 4].try_into().unwrap());
        let ts = u64::from(u32_at(4)) << 32 | u64::from(u32_at(8));
        assert_eq!((u32_at(0), ts), (0, 1_700_000_000_123_456_789));
        let frame = mptcp_frame();
        assert_eq!(
            (u32_at(12), u32_at(16)),
            (frame.len() as u32, frame.len() as u32)
        );
        assert_eq!(&epb[20..20 + frame.len()], &frame[..]);
        let opts = &epb[(20 + frame.len()).next_multiple_of(4)..];
        assert_eq!(opts, &[2, 0, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let out = &b[3].1;
        assert_eq!(
            &out[12..20],
            &[60, 0, 0, 0, 0xea, 5, 0, 0],
            "cut at 60 of 1514"
        );
    }

    #[test]
    fn tshark_reads_the_file_and_decodes_mptcp() {
        if std::process::Command::new("tshark")
            .arg("-v")
            .output()
            .is_err()
        {
            eprintln!("tshark not installed: skipped");
            return;
        }
        let path = std::env::temp_dir().join(format!("mpgw-pcapng-{}.pcapng", std::process::id()));
        std::fs::write(&path, sample()).unwrap();
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.interface_name"])
            .args(["-e", "frame.packet_flags_direction", "-e", "mptcp.dss.dsn"])
            .args(["-e", "frame.len", "-e", "frame.cap_len"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(rows[0][0], "down0");
        assert_eq!(rows[0][1], "0x00000001", "inbound");
        assert_eq!(rows[0][2], (0x1122_3344_5566_7788u64).to_string());
        assert_eq!(rows[1][1], "0x00000002", "outbound");
        assert_eq!((rows[1][3], rows[1][4]), ("1514", "60"));
    }
}
