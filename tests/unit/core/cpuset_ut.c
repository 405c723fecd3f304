/*
 * Unit tests for core/cpuset.c: set operations, parsing of hex masks and
 * core lists (including every malformed form we reject), and formatting.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ustor/cpuset.h"

static void test_set_get_count(void **state)
{
	struct ust_cpuset s;

	ust_cpuset_zero(&s);
	assert_int_equal(ust_cpuset_count(&s), 0);
	ust_cpuset_set(&s, 0, true);
	ust_cpuset_set(&s, 63, true);
	ust_cpuset_set(&s, 64, true);
	ust_cpuset_set(&s, 255, true);
	ust_cpuset_set(&s, 256, true); /* out of range: ignored */
	assert_int_equal(ust_cpuset_count(&s), 4);
	assert_true(ust_cpuset_get(&s, 63));
	assert_true(ust_cpuset_get(&s, 64));
	assert_true(ust_cpuset_get(&s, 255));
	assert_false(ust_cpuset_get(&s, 1));
	assert_false(ust_cpuset_get(&s, 256));
	ust_cpuset_set(&s, 63, false);
	assert_false(ust_cpuset_get(&s, 63));
	assert_int_equal(ust_cpuset_count(&s), 3);
}

static void test_and_or_equal(void **state)
{
	struct ust_cpuset a, b, c;

	assert_int_equal(ust_cpuset_parse(&a, "[0-3]"), 0);
	assert_int_equal(ust_cpuset_parse(&b, "[2-5,100]"), 0);
	c = a;
	ust_cpuset_and(&c, &b);
	assert_int_equal(ust_cpuset_count(&c), 2);
	assert_true(ust_cpuset_get(&c, 2) && ust_cpuset_get(&c, 3));
	c = a;
	ust_cpuset_or(&c, &b);
	assert_int_equal(ust_cpuset_count(&c), 7);
	assert_true(ust_cpuset_get(&c, 100));
	assert_false(ust_cpuset_equal(&a, &b));
	assert_int_equal(ust_cpuset_parse(&b, "0xf"), 0);
	assert_true(ust_cpuset_equal(&a, &b));
}

static void test_parse_hex(void **state)
{
	struct ust_cpuset s;

	assert_int_equal(ust_cpuset_parse(&s, "0x3"), 0);
	assert_int_equal(ust_cpuset_count(&s), 2);
	assert_true(ust_cpuset_get(&s, 0) && ust_cpuset_get(&s, 1));

	/* Without the prefix a mask is still hex: "10" is core 4, not core 10. */
	assert_int_equal(ust_cpuset_parse(&s, "10"), 0);
	assert_int_equal(ust_cpuset_count(&s), 1);
	assert_true(ust_cpuset_get(&s, 4));

	assert_int_equal(ust_cpuset_parse(&s, "0XaB"), 0);
	assert_int_equal(s.bits[0], 0xab);

	/* Core 255 is the highest: 64 significant digits, leading zeros allowed. */
	assert_int_equal(ust_cpuset_parse(&s, "0x8000000000000000000000000000000000000000000000000000000000000000"), 0);
	assert_int_equal(ust_cpuset_count(&s), 1);
	assert_true(ust_cpuset_get(&s, 255));
	assert_int_equal(ust_cpuset_parse(&s, "0x00000001"), 0);
	assert_true(ust_cpuset_get(&s, 0));
	assert_int_equal(ust_cpuset_parse(&s, "  0x2 "), 0);
	assert_true(ust_cpuset_get(&s, 1));
	assert_int_equal(ust_cpuset_parse(&s, "0x0"), 0);
	assert_int_equal(ust_cpuset_count(&s), 0);
}

static void test_parse_list(void **state)
{
	struct ust_cpuset s;

	assert_int_equal(ust_cpuset_parse(&s, "[0-3,6]"), 0);
	assert_int_equal(ust_cpuset_count(&s), 5);
	assert_true(ust_cpuset_get(&s, 6));
	assert_false(ust_cpuset_get(&s, 4));

	assert_int_equal(ust_cpuset_parse(&s, "[ 7 , 9 - 10 ]"), 0);
	assert_int_equal(ust_cpuset_count(&s), 3);
	assert_true(ust_cpuset_get(&s, 10));

	assert_int_equal(ust_cpuset_parse(&s, "[255]"), 0);
	assert_true(ust_cpuset_get(&s, 255));
	assert_int_equal(ust_cpuset_parse(&s, "[5-5]"), 0);
	assert_int_equal(ust_cpuset_count(&s), 1);
}

static void test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "   ", "0x", "0X", "zz", "0xg", "0x1 2", "3z", "-1",
		"[3-1]", "[]", "[", "]", "[1", "1]", "[1,]", "[,1]", "[1-]", "[-1]", "[1--2]",
		"[256]", "[0-256]", "[99999999999999999999]", "[a]", "[1]x", "[1 2]",
		"0x10000000000000000000000000000000000000000000000000000000000000000",
	};
	struct ust_cpuset s, before;
	size_t i;

	assert_int_equal(ust_cpuset_parse(&s, "0x5"), 0);
	before = s;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = ust_cpuset_parse(&s, bad[i]);

		if (rc != -EINVAL)
			fail_msg("\"%s\" parsed with %d, expected -EINVAL", bad[i], rc);
		/* All or nothing: the set is untouched. */
		assert_true(ust_cpuset_equal(&s, &before));
	}
	assert_int_equal(ust_cpuset_parse(&s, NULL), -EINVAL);
	assert_int_equal(ust_cpuset_parse(NULL, "0x1"), -EINVAL);
}

static void test_fmt(void **state)
{
	struct ust_cpuset s, back;
	char buf[68], small[4];

	ust_cpuset_zero(&s);
	assert_string_equal(ust_cpuset_fmt(&s, buf, sizeof(buf)), "0x0");
	assert_int_equal(ust_cpuset_parse(&s, "[0-3,6]"), 0);
	assert_string_equal(ust_cpuset_fmt(&s, buf, sizeof(buf)), "0x4f");
	assert_int_equal(ust_cpuset_parse(&s, "[64]"), 0);
	assert_string_equal(ust_cpuset_fmt(&s, buf, sizeof(buf)), "0x10000000000000000");

	ust_cpuset_zero(&s);
	ust_cpuset_set(&s, 255, true);
	ust_cpuset_set(&s, 0, true);
	assert_ptr_equal(ust_cpuset_fmt(&s, buf, sizeof(buf)), buf);
	assert_int_equal(strlen(buf), 66);
	assert_int_equal(ust_cpuset_parse(&back, buf), 0);
	assert_true(ust_cpuset_equal(&s, &back));

	/* Too small a buffer is refused, never overrun. */
	memset(small, 'X', sizeof(small));
	assert_null(ust_cpuset_fmt(&s, small, sizeof(small)));
	assert_int_equal(small[0], 'X');
	ust_cpuset_zero(&s);
	ust_cpuset_set(&s, 4, true);
	assert_null(ust_cpuset_fmt(&s, small, sizeof(small)));
	assert_string_equal(ust_cpuset_fmt(&s, buf, 5), "0x10");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_count), cmocka_unit_test(test_and_or_equal),
		cmocka_unit_test(test_parse_hex),     cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_parse_bad),     cmocka_unit_test(test_fmt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
