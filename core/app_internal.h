/*
 * Private interfaces between the pieces of the application framework:
 * reactors (reactor.c), the app life cycle (app.c), the subsystem registry
 * (subsystem.c) and the framework RPCs (app_rpc.c). Nothing outside core/
 * (except core's own unit tests) includes this header.
 */
#ifndef USTOR_CORE_APP_INTERNAL_H
#define USTOR_CORE_APP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "ustor/app.h"

/* ---- reactors (reactor.c) ----------------------------------------------- */

/*
 * Create one reactor per core of the environment's mask and register them as
 * the thread library's scheduler. Call after ust_env_init().
 */
int ust_reactors_init(enum ust_poll_mode mode);
/* Free the reactors; after ust_reactors_run() returned and threads are gone. */
void ust_reactors_fini(void);
/*
 * Launch the reactors of the other cores, run the main core's reactor in the
 * calling OS thread, and return once every reactor has stopped.
 */
int ust_reactors_run(void);
/*
 * Ask every ust_thread to exit; each reactor stops once all its threads have
 * exited and been destroyed. Safe from any ust_thread.
 */
void ust_reactors_stop(void);
/* Wake the main reactor; async-signal-safe. */
void ust_reactors_kick_main(void);
/* framework_get_reactors' result. */
json_t *ust_reactors_info_json(void);

/* ---- app (app.c) -------------------------------------------------------- */

/* Called by the main reactor every iteration: acts on a pending signal. */
void ust_app_poll_signals(void);

/* ---- subsystems (subsystem.c) ------------------------------------------- */

/*
 * Compute the init order from the registered dependencies. -ENOENT if a
 * dependency names an unregistered subsystem, -ELOOP on a cycle (both with
 * an error message naming the subsystems).
 */
int ust_subsystem_sort(void);
/* Initialise every subsystem in order; done(rc) on the calling thread. */
void ust_subsystem_init_all(ust_subsystem_done_fn done, void *ctx);
/* Finish the initialised subsystems in reverse order; done always gets 0. */
void ust_subsystem_fini_all(ust_subsystem_done_fn done, void *ctx);
/* The n-th subsystem in init order (after a successful sort), or NULL. */
struct ust_subsystem *ust_subsystem_get_nth(uint32_t n);
/* framework_get_subsystems' result: [{"subsystem":..,"depends_on":[..]}]. */
json_t *ust_subsystem_list_json(void);
/* One subsystem's config calls (a new array), or NULL if unknown. */
json_t *ust_subsystem_config_json(const char *name);
/* Forget every registration (unit tests only). */
void ust_subsystem_registry_reset(void);

#endif
