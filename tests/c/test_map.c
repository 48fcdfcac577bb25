/* test_map.c - lp_map: put/get/del, collisions, backward-shift deletion,
 * growth and allocation failure. */
#include "lp_test.h"

#include "lp_map.h"

/* A plausible heap address; the keys below are built around it. */
#define BASE ((uintptr_t)0x7f3a12345000u)

static void assert_has(const lp_map_t *m, uintptr_t key, uintptr_t val) {
  uintptr_t v = 0xdeadu;
  assert_int_equal(lp_map_get(m, key, &v), 1);
  assert_int_equal(v, val);
}

static void assert_lacks(const lp_map_t *m, uintptr_t key) {
  uintptr_t v = 0xdeadu;
  assert_int_equal(lp_map_get(m, key, &v), 0);
  assert_int_equal(v, 0xdeadu); /* untouched on a miss */
}

/* Capacity as a number of slots. */
static size_t cap_of(const lp_map_t *m) {
  return m->keys ? m->mask + 1 : 0;
}

static void test_empty(void **state) {
  lp_map_t m;
  (void)state;
  lp_map_init(&m);
  assert_null(m.keys);
  assert_null(m.vals);
  assert_int_equal(m.count, 0);
  assert_int_equal(m.mask, 0);
  assert_lacks(&m, BASE);
  assert_lacks(&m, 1);
  assert_int_equal(lp_map_del(&m, BASE), 0);
  assert_int_equal(m.count, 0);
  lp_map_close(&m);
  lp_map_close(&m); /* closing an empty map twice is fine */
  assert_null(m.keys);
}

static void test_put_get_del(void **state) {
  lp_map_t m;
  (void)state;
  lp_map_init(&m);
  assert_int_equal(lp_map_put(&m, BASE, 11), 0);
  assert_int_equal(m.count, 1);
  assert_int_equal(cap_of(&m), 16); /* first allocation: 16 slots */
  assert_int_equal(lp_map_put(&m, BASE + 16, 22), 0);
  assert_int_equal(lp_map_put(&m, BASE + 32, 0), 0); /* value 0 is a value */
  assert_int_equal(m.count, 3);
  assert_has(&m, BASE, 11);
  assert_has(&m, BASE + 16, 22);
  assert_has(&m, BASE + 32, 0);
  assert_lacks(&m, BASE + 48);
  assert_lacks(&m, BASE + 1);

  assert_int_equal(lp_map_del(&m, BASE + 16), 1);
  assert_int_equal(m.count, 2);
  assert_lacks(&m, BASE + 16);
  assert_has(&m, BASE, 11);
  assert_has(&m, BASE + 32, 0);
  assert_int_equal(lp_map_del(&m, BASE + 16), 0); /* already gone */
  assert_int_equal(lp_map_del(&m, BASE + 48), 0); /* never there */
  assert_int_equal(m.count, 2);

  /* Re-adding a deleted key works. */
  assert_int_equal(lp_map_put(&m, BASE + 16, 33), 0);
  assert_has(&m, BASE + 16, 33);
  assert_int_equal(m.count, 3);

  /* Delete everything: the map is empty but keeps its storage. */
  assert_int_equal(lp_map_del(&m, BASE), 1);
  assert_int_equal(lp_map_del(&m, BASE + 16), 1);
  assert_int_equal(lp_map_del(&m, BASE + 32), 1);
  assert_int_equal(m.count, 0);
  assert_lacks(&m, BASE);
  assert_int_equal(cap_of(&m), 16);

  lp_map_close(&m);
  assert_null(m.keys);
  assert_int_equal(m.count, 0);
  /* Reusable after close. */
  assert_int_equal(lp_map_put(&m, BASE, 7), 0);
  assert_has(&m, BASE, 7);
  lp_map_close(&m);
}

static void test_overwrite(void **state) {
  lp_map_t m;
  int i;
  (void)state;
  lp_map_init(&m);
  for (i = 0; i < 8; i++)
    assert_int_equal(lp_map_put(&m, BASE + 16 * (uintptr_t)i, (uintptr_t)i), 0);
  assert_int_equal(m.count, 8);
  assert_int_equal(cap_of(&m), 16);
  /* Overwrites replace the value without adding an entry or growing, even
   * though the map is exactly at its load limit (8 of 16). */
  for (i = 0; i < 8; i++)
    assert_int_equal(
        lp_map_put(&m, BASE + 16 * (uintptr_t)i, 1000 + (uintptr_t)i), 0);
  assert_int_equal(m.count, 8);
  assert_int_equal(cap_of(&m), 16);
  for (i = 0; i < 8; i++)
    assert_has(&m, BASE + 16 * (uintptr_t)i, 1000 + (uintptr_t)i);
  /* An overwrite at the load limit needs no allocation, so it succeeds
   * even when every allocation fails. */
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_map_put(&m, BASE, 77), 0);
  assert_int_equal(lp_test_alloc.allocs, 0);
  lp_test_alloc_reset();
  assert_has(&m, BASE, 77);
  assert_int_equal(m.count, 8);
  lp_map_close(&m);
}

static void test_key_zero_put(void **state) {
  lp_map_t m;
  uintptr_t v = 0xdeadu;
  (void)state;
  lp_map_init(&m);
  assert_int_equal(lp_map_put(&m, 0, 5), LP_EINVAL);
  assert_int_equal(m.count, 0);
  assert_null(m.keys); /* nothing allocated for a rejected key */
  assert_int_equal(lp_map_get(&m, 0, &v), 0);
  assert_int_equal(lp_map_del(&m, 0), 0);
  assert_int_equal(lp_map_put(&m, BASE, 1), 0);
  assert_int_equal(lp_map_put(&m, 0, 5), LP_EINVAL);
  assert_int_equal(m.count, 1);
  assert_has(&m, BASE, 1);
  lp_map_close(&m);
}

/* Three keys in a 16-slot map, so empty slots exist. Set up and closed
 * by the harness so a failing assertion leaks nothing. */
static lp_map_t map3;

static int setup_map3(void **state) {
  lp_map_init(&map3);
  if (lp_map_put(&map3, BASE, 1) || lp_map_put(&map3, BASE + 16, 2) ||
      lp_map_put(&map3, BASE + 32, 3))
    return -1;
  *state = &map3;
  return 0;
}

static int teardown_map3(void **state) {
  lp_map_close(*state);
  return 0;
}

static void test_key_zero_get(void **state) {
  lp_map_t *m = *state;
  uintptr_t v = 0xdeadu;
  /* Key 0 is never present, also in a non-empty map. */
  assert_int_equal(lp_map_get(m, 0, &v), 0);
  assert_int_equal(v, 0xdeadu);
}

static void test_key_zero_del(void **state) {
  lp_map_t *m = *state;
  /* Deleting key 0 removes nothing and leaves the count alone. */
  assert_int_equal(lp_map_del(m, 0), 0);
  assert_int_equal(m->count, 3);
  assert_has(m, BASE, 1);
  assert_has(m, BASE + 16, 2);
  assert_has(m, BASE + 32, 3);
}

/* Inserts keys[0..n), deletes them in the order given by order[], and after
 * every deletion checks that each remaining key is found with its value and
 * each deleted one is gone. */
static void check_delete_order(const uintptr_t *keys, size_t n,
                               const size_t *order) {
  lp_map_t m;
  size_t i, j, k;
  char gone[64] = {0};
  assert_true(n <= 64);
  lp_map_init(&m);
  for (i = 0; i < n; i++)
    assert_int_equal(lp_map_put(&m, keys[i], 100 + i), 0);
  assert_int_equal(m.count, n);
  for (k = 0; k < n; k++) {
    i = order[k];
    assert_int_equal(lp_map_del(&m, keys[i]), 1);
    gone[i] = 1;
    assert_int_equal(m.count, n - k - 1);
    for (j = 0; j < n; j++) {
      if (gone[j])
        assert_lacks(&m, keys[j]);
      else
        assert_has(&m, keys[j], 100 + j);
    }
  }
  lp_map_close(&m);
}

/* Deletes in forward, backward and a scrambled order. */
static void check_all_orders(const uintptr_t *keys, size_t n) {
  size_t fwd[64], bwd[64], mix[64], i;
  assert_true(n <= 64);
  for (i = 0; i < n; i++) {
    fwd[i] = i;
    bwd[i] = n - 1 - i;
    mix[i] = (i * 7 + 3) % n; /* a permutation when gcd(7, n) == 1 */
  }
  check_delete_order(keys, n, fwd);
  check_delete_order(keys, n, bwd);
  if (n % 7 != 0)
    check_delete_order(keys, n, mix);
}

static void test_collide_below_bit4(void **state) {
  uintptr_t keys[16];
  size_t i;
  (void)state;
  /* BASE .. BASE+15 differ only in bits 0-3: one probe run of 16. */
  for (i = 0; i < 16; i++)
    keys[i] = BASE + i;
  check_all_orders(keys, 16);
}

static void test_collide_above_bit4(void **state) {
  uintptr_t keys[20];
  size_t i;
  (void)state;
  /* Keys 16 bytes apart (like small aligned objects). */
  for (i = 0; i < 20; i++)
    keys[i] = BASE + 16 * i;
  check_all_orders(keys, 20);
  /* Keys that differ only in high bits (bit 40 and up). */
  for (i = 0; i < 20; i++)
    keys[i] = BASE + ((uintptr_t)(i + 1) << 40);
  check_all_orders(keys, 20);
  /* Keys a page apart. */
  for (i = 0; i < 20; i++)
    keys[i] = BASE + 4096 * i;
  check_all_orders(keys, 20);
}

static void test_collide_mixed(void **state) {
  uintptr_t keys[24];
  size_t i;
  (void)state;
  /* Groups of identical hashes next to each other: runs of several homes
   * merge, so deletions must not pull an entry in front of its home. */
  for (i = 0; i < 24; i++)
    keys[i] = BASE + 16 * (i / 4) + (i % 4);
  check_all_orders(keys, 24);
}

/* Returns the slot that key lands in when alone in a 16-slot map. */
static size_t home16(uintptr_t key) {
  lp_map_t m;
  size_t i, slot = 99;
  lp_map_init(&m);
  assert_int_equal(lp_map_put(&m, key, 1), 0);
  assert_int_equal(cap_of(&m), 16);
  for (i = 0; i < 16; i++)
    if (m.keys[i] == key)
      slot = i;
  lp_map_close(&m);
  assert_true(slot < 16);
  return slot;
}

static void test_wraparound_run(void **state) {
  /* A probe run that wraps from the last slot to slot 0: 4 keys at home 15,
   * 2 at home 0, 1 at home 1 (8 keys fit in 16 slots without growing). */
  uintptr_t keys[8];
  size_t n15 = 0, n0 = 0, n1 = 0, n = 0;
  uintptr_t k;
  lp_map_t m;
  (void)state;
  for (k = BASE; n < 7; k += 16) {
    size_t h = home16(k);
    if (h == 15 && n15 < 4) {
      keys[n++] = k;
      n15++;
    } else if (h == 0 && n0 < 2) {
      keys[n++] = k;
      n0++;
    } else if (h == 1 && n1 < 1) {
      keys[n++] = k;
      n1++;
    }
    assert_true(k < BASE + 16 * 100000);
  }
  /* The run is 15, 0, 1, ..., 5 once all 7 are in. */
  lp_map_init(&m);
  for (n = 0; n < 7; n++)
    assert_int_equal(lp_map_put(&m, keys[n], n), 0);
  assert_int_equal(cap_of(&m), 16);
  assert_true(m.keys[15] != 0);
  assert_true(m.keys[0] != 0);
  assert_true(m.keys[5] != 0);
  assert_int_equal(m.keys[6], 0);
  lp_map_close(&m);
  check_all_orders(keys, 7);
}

/* A tiny deterministic generator (xorshift64). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_random_against_model(void **state) {
  /* 64 candidate keys in four families that collide in different ways; a
   * plain array is the model. */
  enum { NKEYS = 64, NOPS = 20000 };
  uintptr_t keys[NKEYS], model[NKEYS];
  char present[NKEYS] = {0};
  size_t i, op, count = 0;
  lp_map_t m;
  (void)state;
  for (i = 0; i < NKEYS; i++) {
    switch (i % 4) {
    case 0: keys[i] = BASE + i / 4; break;                       /* bits 0-3 */
    case 1: keys[i] = BASE + 0x100000 + 16 * (i / 4); break;     /* stride 16 */
    case 2: keys[i] = BASE + ((uintptr_t)(i / 4 + 1) << 36); break; /* high */
    default: keys[i] = BASE + 0x200000 + 4096 * (i / 4); break;  /* pages */
    }
  }
  lp_map_init(&m);
  for (op = 0; op < NOPS; op++) {
    uint64_t r = rng();
    i = (size_t)(r % NKEYS);
    if ((r >> 32) % 3 != 0) {
      uintptr_t v = (uintptr_t)(r >> 8);
      assert_int_equal(lp_map_put(&m, keys[i], v), 0);
      if (!present[i])
        count++;
      present[i] = 1;
      model[i] = v;
    } else {
      assert_int_equal(lp_map_del(&m, keys[i]), present[i]);
      if (present[i])
        count--;
      present[i] = 0;
    }
    assert_int_equal(m.count, count);
    for (i = 0; i < NKEYS; i++) {
      if (present[i])
        assert_has(&m, keys[i], model[i]);
      else
        assert_lacks(&m, keys[i]);
    }
  }
  lp_map_close(&m);
}

static void test_growth(void **state) {
  /* Capacity doubles when an insert would make the map more than half
   * full: 16 slots hold 8 keys, 32 hold 16, ..., 2048 hold 1024. */
  static const struct {
    size_t count, cap;
  } steps[] = {{1, 16},   {8, 16},    {9, 32},     {16, 32},   {17, 64},
               {32, 64},  {33, 128},  {64, 128},   {65, 256},  {128, 256},
               {129, 512}, {256, 512}, {257, 1024}, {512, 1024}, {513, 2048},
               {1000, 2048}};
  lp_map_t m;
  size_t i, s = 0;
  (void)state;
  lp_map_init(&m);
  for (i = 0; i < 1000; i++) {
    assert_int_equal(lp_map_put(&m, BASE + 48 * i, i * 3), 0);
    if (m.count == steps[s].count) {
      assert_int_equal(cap_of(&m), steps[s].cap);
      s++;
    }
  }
  assert_int_equal(s, sizeof(steps) / sizeof(steps[0]));
  assert_int_equal(m.count, 1000);
  assert_int_equal(m.mask, 2047);
  for (i = 0; i < 1000; i++)
    assert_has(&m, BASE + 48 * i, i * 3);
  assert_lacks(&m, BASE + 48 * 1000);
  /* Delete every other key; the rest stay reachable; no shrinking. */
  for (i = 0; i < 1000; i += 2)
    assert_int_equal(lp_map_del(&m, BASE + 48 * i), 1);
  assert_int_equal(m.count, 500);
  assert_int_equal(cap_of(&m), 2048);
  for (i = 0; i < 1000; i++) {
    if (i % 2)
      assert_has(&m, BASE + 48 * i, i * 3);
    else
      assert_lacks(&m, BASE + 48 * i);
  }
  lp_map_close(&m);
}

/* Fills a map to its limit of 8 keys in 16 slots. */
static void fill8(lp_map_t *m) {
  uintptr_t i;
  lp_map_init(m);
  for (i = 0; i < 8; i++)
    assert_int_equal(lp_map_put(m, BASE + 16 * i, i + 1), 0);
  assert_int_equal(m->count, 8);
  assert_int_equal(cap_of(m), 16);
}

static void check_fill8_unchanged(const lp_map_t *m, const uintptr_t *keys,
                                  const uintptr_t *vals) {
  uintptr_t i;
  assert_int_equal(m->count, 8);
  assert_int_equal(m->mask, 15);
  /* The very same storage, slot for slot. */
  for (i = 0; i < 16; i++) {
    assert_int_equal(m->keys[i], keys[i]);
    assert_int_equal(m->vals[i], vals[i]);
  }
  for (i = 0; i < 8; i++)
    assert_has(m, BASE + 16 * i, i + 1);
  assert_lacks(m, BASE + 16 * 8);
}

static void test_alloc_failure(void **state) {
  lp_map_t m;
  uintptr_t keys[16], vals[16], *pk, *pv;
  long n;
  (void)state;

  /* First allocation of an empty map: a grow needs two arrays. */
  for (n = 0; n < 2; n++) {
    lp_map_init(&m);
    lp_test_alloc_fail_from(n);
    assert_int_equal(lp_map_put(&m, BASE, 1), LP_ENOMEM);
    /* Both arrays are asked for before either is checked. */
    assert_int_equal(lp_test_alloc.allocs, 2);
    /* Whatever was allocated was given back. */
    assert_int_equal(lp_test_alloc.frees, n);
    lp_test_alloc_reset();
    assert_null(m.keys);
    assert_null(m.vals);
    assert_int_equal(m.count, 0);
    assert_lacks(&m, BASE);
    lp_map_close(&m);
  }

  /* Growth of a full map: "succeeds n times, then fails", and "fails only
   * call n", for each of the two allocations. */
  for (n = 0; n < 4; n++) {
    fill8(&m);
    memcpy(keys, m.keys, sizeof(keys));
    memcpy(vals, m.vals, sizeof(vals));
    pk = m.keys;
    pv = m.vals;
    if (n < 2)
      lp_test_alloc_fail_from(n);
    else
      lp_test_alloc_fail_at(n - 2);
    assert_int_equal(lp_map_put(&m, BASE + 16 * 8, 9), LP_ENOMEM);
    assert_int_equal(lp_test_alloc.allocs, 2);
    assert_int_equal(lp_test_alloc.frees, n == 0 ? 0 : 1);
    lp_test_alloc_reset();
    assert_ptr_equal(m.keys, pk);
    assert_ptr_equal(m.vals, pv);
    check_fill8_unchanged(&m, keys, vals);
    /* And the map still works once memory is back. */
    assert_int_equal(lp_map_put(&m, BASE + 16 * 8, 9), 0);
    assert_int_equal(m.count, 9);
    assert_int_equal(cap_of(&m), 32);
    assert_has(&m, BASE + 16 * 8, 9);
    assert_has(&m, BASE, 1);
    lp_map_close(&m);
  }

  /* Deletion never allocates. */
  fill8(&m);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_map_del(&m, BASE + 16 * 3), 1);
  assert_int_equal(lp_map_del(&m, BASE + 16 * 5), 1);
  assert_int_equal(lp_test_alloc.allocs, 0);
  /* Now below the limit: a new key goes in without allocating. */
  assert_int_equal(lp_map_put(&m, BASE + 16 * 20, 21), 0);
  assert_int_equal(lp_test_alloc.allocs, 0);
  lp_test_alloc_reset();
  assert_int_equal(m.count, 7);
  assert_has(&m, BASE + 16 * 20, 21);
  assert_lacks(&m, BASE + 16 * 3);
  lp_map_close(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_put_get_del),
      cmocka_unit_test_teardown(test_overwrite, lp_test_teardown_alloc),
      cmocka_unit_test(test_key_zero_put),
      cmocka_unit_test_setup_teardown(test_key_zero_get, setup_map3,
                                      teardown_map3),
      cmocka_unit_test_setup_teardown(test_key_zero_del, setup_map3,
                                      teardown_map3),
      cmocka_unit_test(test_collide_below_bit4),
      cmocka_unit_test(test_collide_above_bit4),
      cmocka_unit_test(test_collide_mixed),
      cmocka_unit_test(test_wraparound_run),
      cmocka_unit_test(test_random_against_model),
      cmocka_unit_test(test_growth),
      cmocka_unit_test_teardown(test_alloc_failure, lp_test_teardown_alloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
