/*
 * The one include surface of dpdk-sys: bindgen generates the Rust bindings from it, and
 * the C shim (generated static-inline wrappers plus extra.c) is compiled with it.
 */
#ifndef DPDK_SYS_WRAPPER_H
#define DPDK_SYS_WRAPPER_H

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_flow.h>
#include <rte_malloc.h>
#include <rte_thash.h>

#if __has_include(<rte_pdump.h>)
#include <rte_pdump.h>
#endif

#if __has_include(<rte_telemetry.h>)
#include <rte_telemetry.h>
#endif

/* Hand-written helpers (csrc/extra.c) for what bindgen cannot wrap. */

/** The calling thread's `rte_errno` (a thread-local variable behind a macro). */
int dpdk_sys_rte_errno(void);

/** Next valid, unowned ethdev port at or after `port_id` (`RTE_ETH_FOREACH_DEV` step);
 * `RTE_MAX_ETHPORTS` when there is none. */
uint16_t dpdk_sys_eth_next_port(uint16_t port_id);

#endif
