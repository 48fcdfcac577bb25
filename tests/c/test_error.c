/* test_error.c - lp_error: the code list, lp_strerror and lp_err_name. */
#include "lp_test.h"

#include <limits.h>

/* The list as written by hand: value, name, message. */
static const struct {
  int code;
  const char *name;
  const char *msg;
} expected[] = {
    {-1, "LP_ENOMEM", "out of memory"},
    {-2, "LP_EINVAL", "invalid argument"},
    {-3, "LP_EIO", "input/output error"},
    {-4, "LP_EBADMAGIC", "not a lineprof profile (bad magic)"},
    {-5, "LP_EVERSION",
     "profile was written by a newer lineprof (format version too new)"},
    {-6, "LP_ETRUNC", "profile is truncated"},
    {-7, "LP_ECORRUPT", "profile is damaged (checksum mismatch)"},
    {-8, "LP_EFORMAT", "profile is malformed"},
    {-9, "LP_EBUSY", "another lineprof profiler is active"},
    {-10, "LP_EADDR", "bad address: use HOST:PORT, PORT or unix:PATH"},
    {-11, "LP_EREMOTE",
     "refusing a non-loopback address (allow it explicitly)"},
    {-12, "LP_EPROTO", "malformed request"},
    {-13, "LP_ESTATE", "the worker is not in a state that allows this"},
};
#define NEXPECTED (sizeof(expected) / sizeof(expected[0]))

static void test_code_values(void **state) {
  (void)state;
  assert_int_equal(LP_OK, 0);
  assert_int_equal(LP_ENOMEM, -1);
  assert_int_equal(LP_EINVAL, -2);
  assert_int_equal(LP_EIO, -3);
  assert_int_equal(LP_EBADMAGIC, -4);
  assert_int_equal(LP_EVERSION, -5);
  assert_int_equal(LP_ETRUNC, -6);
  assert_int_equal(LP_ECORRUPT, -7);
  assert_int_equal(LP_EFORMAT, -8);
  assert_int_equal(LP_EBUSY, -9);
  assert_int_equal(LP_EADDR, -10);
  assert_int_equal(LP_EREMOTE, -11);
  assert_int_equal(LP_EPROTO, -12);
  assert_int_equal(LP_ESTATE, -13);
  /* The list has exactly the codes above. */
  assert_int_equal(LP__EINDEX_MAX, 14);
}

static void test_messages_and_names(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < NEXPECTED; i++) {
    assert_string_equal(lp_strerror(expected[i].code), expected[i].msg);
    assert_string_equal(lp_err_name(expected[i].code), expected[i].name);
  }
}

static void test_all_distinct(void **state) {
  int a, b;
  (void)state;
  /* Every code from LP_OK down to the last one. */
  for (a = 0; a > -LP__EINDEX_MAX; a--) {
    assert_non_null(lp_strerror(a));
    assert_non_null(lp_err_name(a));
    assert_string_not_equal(lp_strerror(a), "unknown error");
    assert_string_not_equal(lp_err_name(a), "LP_UNKNOWN");
    for (b = a - 1; b > -LP__EINDEX_MAX; b--) {
      assert_string_not_equal(lp_strerror(a), lp_strerror(b));
      assert_string_not_equal(lp_err_name(a), lp_err_name(b));
    }
  }
}

static void test_ok(void **state) {
  (void)state;
  assert_string_equal(lp_strerror(0), "success");
  assert_string_equal(lp_err_name(0), "LP_OK");
}

static void test_unknown(void **state) {
  static const int unknown[] = {1, 2, 9, -14, -15, -100, 12345, INT_MAX,
                                INT_MIN, INT_MIN + 1};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    assert_string_equal(lp_strerror(unknown[i]), "unknown error");
    assert_string_equal(lp_err_name(unknown[i]), "LP_UNKNOWN");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_code_values),
      cmocka_unit_test(test_messages_and_names),
      cmocka_unit_test(test_all_distinct),
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
