/*
 * The recording side shared by the blobstore crash-replay tests (blob_test.h,
 * "crash recording"): a crashsim bdev "CS0" over a malloc bdev, recording
 * started synchronously, every bt_done callback stamped with the event
 * count it completed at, and the teardown of it all.
 *
 * Guarantees: each helper returns only once its asynchronous part is done
 * and fails the running cmocka test otherwise; once bt_crash_destroy
 * returns no hook refers to the crashsim bdev any more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ustor/crashsim.h"

#include "blob_test.h"

static struct ust_crashsim *g_bt_cs;

static void stamp_ack(struct bt_done *d)
{
	d->at_event = ust_crashsim_num_events(g_bt_cs);
}

static void start_done(void *ctx, int rc)
{
	*(int *)ctx = rc == 0 ? 1 : rc;
}

struct ust_crashsim *bt_crash_create(const char *base, bool stamp_acks)
{
	struct ust_crashsim *cs;

	assert_int_equal(ust_crashsim_create(base, "CS0"), 0);
	cs = ust_crashsim_get("CS0");
	assert_non_null(cs);
	if (stamp_acks) {
		g_bt_cs = cs;
		bt_set_ack_hook(stamp_ack);
	}
	return cs;
}

void bt_crash_start(struct ust_crashsim *cs)
{
	int started = 0;

	assert_int_equal(ust_crashsim_start(cs, start_done, &started), 0);
	bt_poll();
	assert_int_equal(started, 1);
}

void bt_crash_destroy(struct ust_crashsim_image *img, const char *base)
{
	if (img != NULL) {
		ust_crashsim_image_free(img, NULL, NULL);
		bt_poll();
	}
	if (g_bt_cs != NULL) {
		bt_set_ack_hook(NULL);
		g_bt_cs = NULL;
	}
	assert_int_equal(ust_crashsim_delete("CS0", NULL, NULL), 0);
	bt_poll();
	assert_int_equal(bt_malloc_delete(base), 0);
}
