//! MPTCP counters named after Linux's `MPTcpExt*` MIB (net/mptcp/mib.c), so operators
//! read mpgw's figures with the names `nstat` shows for the kernel. Each stack (one per
//! worker) owns one [`MibCounters`]; the control thread sums them.

macro_rules! mib {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One MPTCP MIB counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        #[allow(non_camel_case_types)]
        pub enum Mib {
            $($(#[$doc])* $name,)*
        }

        impl Mib {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Mib] = &[$(Mib::$name,)*];

            /// The Linux name without the `MPTcpExt` prefix.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Mib::$name => stringify!($name),)*
                }
            }
        }
    };
}

mib! {
    /// SYNs with MP_CAPABLE received by a listener.
    MPCapableSYNRX,
    /// SYNs with MP_CAPABLE sent.
    MPCapableSYNTX,
    /// SYN/ACKs with MP_CAPABLE received by the initiator.
    MPCapableSYNACKRX,
    /// Third ACKs (or first data) with MP_CAPABLE received by a listener.
    MPCapableACKRX,
    /// Listener fell back: the third ACK lacked MP_CAPABLE.
    MPCapableFallbackACK,
    /// Initiator fell back: the SYN/ACK lacked MP_CAPABLE.
    MPCapableFallbackSYNACK,
    /// SYNs retransmitted without MP_CAPABLE after `syn_retrans_before_tcp_fallback`.
    MPCapableSYNTXDrop,
    /// Fallback at SYN time: no token could be allocated.
    MPFallbackTokenInit,
    /// Connection-level retransmissions (reinjections) of data.
    MPTCPRetrans,
    /// MP_JOIN SYNs naming an unknown token.
    MPJoinNoTokenFound,
    /// MP_JOIN SYNs received.
    MPJoinSynRx,
    /// MP_JOIN SYNs received with the backup flag.
    MPJoinSynBackupRx,
    /// MP_JOIN SYN/ACKs received.
    MPJoinSynAckRx,
    /// MP_JOIN SYN/ACKs with a wrong HMAC.
    MPJoinSynAckHMacFailure,
    /// MP_JOIN third ACKs received.
    MPJoinAckRx,
    /// MP_JOIN third ACKs with a wrong HMAC.
    MPJoinAckHMacFailure,
    /// MP_JOIN SYNs refused by the subflow limits.
    MPJoinRejected,
    /// MP_JOIN SYNs refused because the connection was not fully established.
    MPJoinNotEstablished,
    /// MP_JOIN SYNs sent.
    MPJoinSynTx,
    /// A mapping contradicting the current one.
    DSSNotMatching,
    /// Data without a mapping that covers it.
    DSSNoMatchTCP,
    /// Infinite mappings sent.
    InfiniteMapTx,
    /// Infinite mappings received.
    InfiniteMapRx,
    /// DSS checksum failures.
    DataCsumErr,
    /// Segments queued out of order at the connection level.
    OFOQueue,
    /// Segments carrying only data already received at the connection level.
    DuplicateData,
    /// Segments with data beyond the connection-level window.
    NoDSSInWindow,
    /// Segments dropped for lack of reassembly room (too many out-of-order pieces).
    RcvPruned,
    /// ADD_ADDR received.
    AddAddr,
    /// ADD_ADDR sent.
    AddAddrTx,
    /// ADD_ADDR echoes received.
    EchoAdd,
    /// ADD_ADDR with a wrong HMAC, dropped.
    AddAddrDrop,
    /// REMOVE_ADDR received.
    RmAddr,
    /// REMOVE_ADDR sent.
    RmAddrTx,
    /// Subflows closed because their address was removed.
    RmSubflow,
    /// MP_PRIO sent.
    MPPrioTx,
    /// MP_PRIO received.
    MPPrioRx,
    /// MP_FAIL sent.
    MPFailTx,
    /// MP_FAIL received.
    MPFailRx,
    /// MP_FASTCLOSE sent.
    MPFastcloseTx,
    /// MP_FASTCLOSE received (with our key).
    MPFastcloseRx,
    /// MP_TCPRST sent.
    MPRstTx,
    /// MP_TCPRST received.
    MPRstRx,
    /// Subflows marked stale.
    SubflowStale,
    /// Stale subflows that came back.
    SubflowRecover,
    /// Fallbacks because DSS options went missing (data without a mapping, or segments
    /// without MPTCP options) while fallback was still possible.
    DssFallback,
}

/// The MIB counters of one stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MibCounters([u64; Mib::ALL.len()]);

impl Default for MibCounters {
    fn default() -> Self {
        MibCounters([0; Mib::ALL.len()])
    }
}

impl MibCounters {
    /// Adds one to `m`.
    #[inline]
    pub fn inc(&mut self, m: Mib) {
        self.0[m as usize] += 1;
    }

    /// The value of `m`.
    #[inline]
    pub fn get(&self, m: Mib) -> u64 {
        self.0[m as usize]
    }

    /// Every counter with its Linux name.
    pub fn iter(&self) -> impl Iterator<Item = (Mib, u64)> + '_ {
        Mib::ALL.iter().map(|&m| (m, self.get(m)))
    }
}
