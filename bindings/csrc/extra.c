/*
 * Hand-written shim for what `wrap_static_fns` cannot generate: thread-local variables
 * and statement macros. Everything else comes from the generated static_fns.c.
 */
#include "wrapper.h"

int dpdk_sys_rte_errno(void)
{
	return rte_errno;
}

uint16_t dpdk_sys_eth_next_port(uint16_t port_id)
{
	return (uint16_t)rte_eth_find_next_owned_by(port_id, RTE_ETH_DEV_NO_OWNER);
}
