/* lp_map.h - an open-addressing hash map from nonzero uintptr_t keys
 * (object addresses) to uintptr_t values. Linear probing, backward-shift
 * deletion, at most half full. No locking: one thread at a time. */
#ifndef LP_MAP_H
#define LP_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct lp_map_s {
  uintptr_t *keys; /* 0 marks an empty slot */
  uintptr_t *vals;
  size_t mask;     /* capacity - 1; capacity is a power of two or 0 */
  size_t count;
  unsigned shift;  /* 64 - log2(capacity): slots come from the hash's top bits */
} lp_map_t;

/* Initializes an empty map. Allocates nothing; cannot fail. */
void lp_map_init(lp_map_t *m);

/* Frees the map's storage. The map is empty and reusable afterwards. */
void lp_map_close(lp_map_t *m);

/* Sets key (nonzero) to val, replacing any previous value. Returns 0, or
 * LP_ENOMEM (the map is unchanged) or LP_EINVAL for key 0. */
int lp_map_put(lp_map_t *m, uintptr_t key, uintptr_t val);

/* Returns the home slot of key (Fibonacci hashing: the product's top bits,
 * so keys that differ only in high or only in low bits spread alike). */
static inline size_t lp__map_slot(const lp_map_t *m, uintptr_t key) {
  return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> m->shift);
}

/* Returns 1 and stores the value in *val if key is present, else 0 (always
 * 0 for key 0). */
static inline int lp_map_get(const lp_map_t *m, uintptr_t key, uintptr_t *val) {
  size_t i;
  if (m->count == 0 || key == 0)
    return 0;
  i = lp__map_slot(m, key);
  for (;;) {
    uintptr_t k = m->keys[i];
    if (k == key) {
      *val = m->vals[i];
      return 1;
    }
    if (k == 0)
      return 0;
    i = (i + 1) & m->mask;
  }
}

/* Removes key. Returns 1 if it was present, else 0 (always 0 for key 0).
 * Never allocates. */
int lp_map_del(lp_map_t *m, uintptr_t key);

#endif
