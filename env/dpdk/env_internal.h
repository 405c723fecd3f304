/*
 * Private to env/dpdk: state shared between the files of the DPDK
 * environment. Nothing outside env/dpdk includes this.
 */
#ifndef USTOR_ENV_DPDK_INTERNAL_H
#define USTOR_ENV_DPDK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * True between a successful ust_env_init() and ust_env_fini(). Every entry
 * point that would touch EAL state checks it, because DPDK's own calls crash
 * or corrupt memory when EAL is not up.
 */
bool ust_env_dpdk_running(void);

/* A socket id is valid for allocation: UST_ENV_SOCKET_ANY or a NUMA node EAL found. */
bool ust_env_dpdk_socket_valid(int socket_id);

#endif
