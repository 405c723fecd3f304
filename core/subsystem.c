/*
 * Subsystem registry: the parts of the stack with global state register
 * themselves (from constructors) with their dependencies; the framework
 * initialises them in dependency order on the app thread and finishes them
 * in the reverse order at shutdown.
 *
 * Guarantees: a subsystem is initialised only after everything it depends
 * on initialised successfully; a dependency on an unregistered subsystem or
 * a dependency cycle is reported by name and nothing is initialised; only
 * subsystems whose init succeeded are finished. The running configuration
 * (ust_app_config_json) lists the subsystems in init order, each with an
 * array of calls ([] when it has nothing to say), so that replaying it
 * recreates objects after the ones they are built on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustor/app.h"
#include "ustor/log.h"

#include "app_internal.h"

struct subsystem_dep {
	char *name;
	char *depends_on;
	struct subsystem_dep *next;
};

static struct ust_subsystem *g_subsystems;
static struct subsystem_dep *g_deps;
/* An error seen while registering (constructors cannot report one). */
static int g_registry_error;

/* Init order, valid after a successful ust_subsystem_sort(). */
static struct ust_subsystem **g_order;
static uint32_t g_order_count;

enum visit_mark { MARK_NEW, MARK_VISITING, MARK_DONE };

struct sort_ctx {
	struct ust_subsystem **subs;
	enum visit_mark *marks;
	uint32_t *stack;
	uint32_t depth;
	uint32_t count;
	struct ust_subsystem **order;
	uint32_t order_count;
};

struct ust_subsystem *ust_subsystem_find(const char *name)
{
	struct ust_subsystem *s;

	if (name == NULL) {
		return NULL;
	}
	for (s = g_subsystems; s != NULL; s = s->next) {
		if (strcmp(s->name, name) == 0) {
			return s;
		}
	}
	return NULL;
}

void ust_subsystem_register(struct ust_subsystem *subsystem)
{
	struct ust_subsystem **tail;

	if (subsystem == NULL || subsystem->name == NULL) {
		g_registry_error = -EINVAL;
		return;
	}
	if (ust_subsystem_find(subsystem->name) != NULL) {
		UST_ERRLOG("subsystem '%s' registered twice\n", subsystem->name);
		g_registry_error = -EEXIST;
		return;
	}
	/* Keep registration order: it breaks ties in the init order. */
	for (tail = &g_subsystems; *tail != NULL; tail = &(*tail)->next) {
	}
	subsystem->next = NULL;
	subsystem->initialized = false;
	*tail = subsystem;
}

void ust_subsystem_add_dependency(const char *name, const char *depends_on)
{
	struct subsystem_dep *dep, **tail;

	if (name == NULL || depends_on == NULL) {
		g_registry_error = -EINVAL;
		return;
	}
	dep = calloc(1, sizeof(*dep));
	if (dep != NULL) {
		dep->name = strdup(name);
		dep->depends_on = strdup(depends_on);
	}
	if (dep == NULL || dep->name == NULL || dep->depends_on == NULL) {
		if (dep != NULL) {
			free(dep->name);
			free(dep->depends_on);
			free(dep);
		}
		g_registry_error = -ENOMEM;
		return;
	}
	for (tail = &g_deps; *tail != NULL; tail = &(*tail)->next) {
	}
	*tail = dep;
}

void ust_subsystem_registry_reset(void)
{
	struct subsystem_dep *dep;

	while (g_deps != NULL) {
		dep = g_deps;
		g_deps = dep->next;
		free(dep->name);
		free(dep->depends_on);
		free(dep);
	}
	g_subsystems = NULL;
	g_registry_error = 0;
	free(g_order);
	g_order = NULL;
	g_order_count = 0;
}

static int sort_index_of(const struct sort_ctx *sc, const char *name)
{
	uint32_t i;

	for (i = 0; i < sc->count; i++) {
		if (strcmp(sc->subs[i]->name, name) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static void report_cycle(const struct sort_ctx *sc, uint32_t closing)
{
	char buf[512];
	size_t len = 0;
	uint32_t i, start = 0;

	for (i = 0; i < sc->depth; i++) {
		if (sc->stack[i] == closing) {
			start = i;
			break;
		}
	}
	buf[0] = '\0';
	for (i = start; i < sc->depth && len < sizeof(buf); i++) {
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s -> ",
					sc->subs[sc->stack[i]]->name);
	}
	if (len < sizeof(buf)) {
		snprintf(buf + len, sizeof(buf) - len, "%s", sc->subs[closing]->name);
	}
	UST_ERRLOG("subsystem dependency cycle: %s\n", buf);
}

static int sort_visit(struct sort_ctx *sc, uint32_t i)
{
	struct subsystem_dep *dep;
	int j, rc;

	if (sc->marks[i] == MARK_DONE) {
		return 0;
	}
	if (sc->marks[i] == MARK_VISITING) {
		report_cycle(sc, i);
		return -ELOOP;
	}
	sc->marks[i] = MARK_VISITING;
	sc->stack[sc->depth++] = i;
	for (dep = g_deps; dep != NULL; dep = dep->next) {
		if (strcmp(dep->name, sc->subs[i]->name) != 0) {
			continue;
		}
		j = sort_index_of(sc, dep->depends_on);
		if (j < 0) {
			UST_ERRLOG("subsystem '%s' depends on '%s', which is not registered\n",
				   dep->name, dep->depends_on);
			return -ENOENT;
		}
		rc = sort_visit(sc, (uint32_t)j);
		if (rc != 0) {
			return rc;
		}
	}
	sc->depth--;
	sc->marks[i] = MARK_DONE;
	sc->order[sc->order_count++] = sc->subs[i];
	return 0;
}

static int check_dependents_exist(void)
{
	struct subsystem_dep *dep;

	for (dep = g_deps; dep != NULL; dep = dep->next) {
		if (ust_subsystem_find(dep->name) == NULL) {
			UST_ERRLOG("a dependency on '%s' is declared for subsystem '%s', which is "
				   "not registered\n", dep->depends_on, dep->name);
			return -ENOENT;
		}
	}
	return 0;
}

static int sort_all(struct sort_ctx *sc)
{
	uint32_t i;
	int rc;

	for (i = 0; i < sc->count; i++) {
		rc = sort_visit(sc, i);
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

int ust_subsystem_sort(void)
{
	struct sort_ctx sc = {0};
	struct ust_subsystem *s;
	int rc;

	if (g_registry_error != 0) {
		UST_ERRLOG("subsystem registration failed: %s\n", strerror(-g_registry_error));
		return g_registry_error;
	}
	rc = check_dependents_exist();
	if (rc != 0) {
		return rc;
	}
	for (s = g_subsystems; s != NULL; s = s->next) {
		sc.count++;
	}
	/* One extra slot keeps the allocations non-zero when nothing is registered. */
	sc.subs = calloc(sc.count + 1, sizeof(*sc.subs));
	sc.marks = calloc(sc.count + 1, sizeof(*sc.marks));
	sc.stack = calloc(sc.count + 1, sizeof(*sc.stack));
	sc.order = calloc(sc.count + 1, sizeof(*sc.order));
	if (sc.subs == NULL || sc.marks == NULL || sc.stack == NULL || sc.order == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	sc.count = 0;
	for (s = g_subsystems; s != NULL; s = s->next) {
		sc.subs[sc.count++] = s;
	}
	rc = sort_all(&sc);
	if (rc == 0) {
		free(g_order);
		g_order = sc.order;
		g_order_count = sc.order_count;
		sc.order = NULL;
	}
out:
	free(sc.subs);
	free(sc.marks);
	free(sc.stack);
	free(sc.order);
	return rc;
}

struct ust_subsystem *ust_subsystem_get_nth(uint32_t n)
{
	return n < g_order_count ? g_order[n] : NULL;
}

/* ---- init and fini ------------------------------------------------------ */

static struct {
	ust_subsystem_done_fn done;
	void *ctx;
	uint32_t next;
	bool running;
} g_walk;

static void subsystem_walk_finish(int rc)
{
	ust_subsystem_done_fn done = g_walk.done;

	g_walk.running = false;
	done(rc, g_walk.ctx);
}

static void subsystem_init_next(void);

static void subsystem_init_done(int rc, void *ctx)
{
	struct ust_subsystem *s = g_order[g_walk.next];

	if (rc != 0) {
		UST_ERRLOG("subsystem '%s' failed to initialise: %s\n", s->name,
			   strerror(rc < 0 ? -rc : rc));
		subsystem_walk_finish(rc < 0 ? rc : -rc);
		return;
	}
	s->initialized = true;
	g_walk.next++;
	subsystem_init_next();
}

static void subsystem_init_next(void)
{
	struct ust_subsystem *s;

	while (g_walk.next < g_order_count) {
		s = g_order[g_walk.next];
		if (s->init != NULL) {
			s->init(subsystem_init_done, NULL);
			return;
		}
		s->initialized = true;
		g_walk.next++;
	}
	subsystem_walk_finish(0);
}

void ust_subsystem_init_all(ust_subsystem_done_fn done, void *ctx)
{
	int rc;

	if (g_walk.running) {
		done(-EBUSY, ctx);
		return;
	}
	rc = ust_subsystem_sort();
	if (rc != 0) {
		done(rc, ctx);
		return;
	}
	g_walk.done = done;
	g_walk.ctx = ctx;
	g_walk.next = 0;
	g_walk.running = true;
	subsystem_init_next();
}

static void subsystem_fini_next(void);

static void subsystem_fini_done(int rc, void *ctx)
{
	struct ust_subsystem *s = g_order[g_walk.next];

	/* Shutdown goes on regardless: a failed fini must not keep the rest alive. */
	if (rc != 0) {
		UST_ERRLOG("subsystem '%s' failed to finish: %s\n", s->name,
			   strerror(rc < 0 ? -rc : rc));
	}
	s->initialized = false;
	subsystem_fini_next();
}

static void subsystem_fini_next(void)
{
	struct ust_subsystem *s;

	while (g_walk.next > 0) {
		g_walk.next--;
		s = g_order[g_walk.next];
		if (!s->initialized) {
			continue;
		}
		if (s->fini != NULL) {
			s->fini(subsystem_fini_done, NULL);
			return;
		}
		s->initialized = false;
	}
	subsystem_walk_finish(0);
}

void ust_subsystem_fini_all(ust_subsystem_done_fn done, void *ctx)
{
	if (g_walk.running) {
		done(-EBUSY, ctx);
		return;
	}
	g_walk.done = done;
	g_walk.ctx = ctx;
	g_walk.next = g_order_count;
	g_walk.running = true;
	subsystem_fini_next();
}

/* ---- JSON views --------------------------------------------------------- */

static json_t *subsystem_calls_json(struct ust_subsystem *s)
{
	json_t *calls = json_array();

	if (calls != NULL && s->write_config_json != NULL) {
		s->write_config_json(calls);
	}
	return calls;
}

json_t *ust_subsystem_config_json(const char *name)
{
	struct ust_subsystem *s = ust_subsystem_find(name);

	return s != NULL ? subsystem_calls_json(s) : NULL;
}

/* Init order when it is known; registration order otherwise. */
static struct ust_subsystem *subsystem_in_order(uint32_t n)
{
	struct ust_subsystem *s;

	if (g_order != NULL) {
		return ust_subsystem_get_nth(n);
	}
	for (s = g_subsystems; s != NULL && n > 0; s = s->next) {
		n--;
	}
	return s;
}

static void ensure_sorted(void)
{
	if (g_order == NULL && ust_subsystem_sort() != 0) {
		UST_WARNLOG("subsystem order unknown; listing in registration order\n");
	}
}

json_t *ust_app_config_json(void)
{
	json_t *root, *list, *entry;
	struct ust_subsystem *s;
	uint32_t n;

	ensure_sorted();
	root = json_object();
	list = json_array();
	if (root == NULL || list == NULL || json_object_set_new(root, "subsystems", list) != 0) {
		json_decref(root);
		return NULL;
	}
	for (n = 0; (s = subsystem_in_order(n)) != NULL; n++) {
		entry = json_pack("{s:s, s:o}", "subsystem", s->name, "config",
				  subsystem_calls_json(s));
		if (entry == NULL || json_array_append_new(list, entry) != 0) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

static json_t *subsystem_depends_json(const struct ust_subsystem *s)
{
	struct subsystem_dep *dep;
	json_t *arr = json_array();

	for (dep = g_deps; arr != NULL && dep != NULL; dep = dep->next) {
		if (strcmp(dep->name, s->name) == 0 &&
		    json_array_append_new(arr, json_string(dep->depends_on)) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *ust_subsystem_list_json(void)
{
	json_t *list = json_array(), *entry;
	struct ust_subsystem *s;
	uint32_t n;

	ensure_sorted();
	for (n = 0; list != NULL && (s = subsystem_in_order(n)) != NULL; n++) {
		entry = json_pack("{s:s, s:o}", "subsystem", s->name, "depends_on",
				  subsystem_depends_json(s));
		if (entry == NULL || json_array_append_new(list, entry) != 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}
