#include "lp_map.h"

#include "lp_alloc.h"
#include "lp_error.h"

#define slot_of lp__map_slot

void lp_map_init(lp_map_t *m) {
  m->keys = NULL;
  m->vals = NULL;
  m->mask = 0;
  m->count = 0;
  m->shift = 64;
}

void lp_map_close(lp_map_t *m) {
  lp__free(m->keys);
  lp__free(m->vals);
  lp_map_init(m);
}

static void insert_fresh(lp_map_t *m, uintptr_t key, uintptr_t val) {
  size_t i = slot_of(m, key);
  while (m->keys[i] != 0)
    i = (i + 1) & m->mask;
  m->keys[i] = key;
  m->vals[i] = val;
  m->count++;
}

static int grow(lp_map_t *m) {
  size_t cap = m->keys ? (m->mask + 1) * 2 : 16;
  size_t i, oldcap = m->keys ? m->mask + 1 : 0;
  uintptr_t *ok = m->keys, *ov = m->vals;
  uintptr_t *nk = lp__calloc(cap, sizeof(*nk));
  uintptr_t *nv = lp__calloc(cap, sizeof(*nv));
  if (nk == NULL || nv == NULL) {
    lp__free(nk);
    lp__free(nv);
    return LP_ENOMEM;
  }
  m->keys = nk;
  m->vals = nv;
  m->mask = cap - 1;
  m->count = 0;
  for (m->shift = 64; cap > 1; cap >>= 1)
    m->shift--;
  for (i = 0; i < oldcap; i++)
    if (ok[i] != 0)
      insert_fresh(m, ok[i], ov[i]);
  lp__free(ok);
  lp__free(ov);
  return 0;
}

int lp_map_put(lp_map_t *m, uintptr_t key, uintptr_t val) {
  size_t i;
  if (key == 0)
    return LP_EINVAL;
  if (m->count > 0) {
    for (i = slot_of(m, key); m->keys[i] != 0; i = (i + 1) & m->mask) {
      if (m->keys[i] == key) {
        m->vals[i] = val;
        return 0;
      }
    }
  }
  if (m->keys == NULL || (m->count + 1) * 2 > m->mask + 1) {
    int err = grow(m);
    if (err)
      return err;
  }
  insert_fresh(m, key, val);
  return 0;
}

int lp_map_del(lp_map_t *m, uintptr_t key) {
  size_t i, j;
  if (m->count == 0 || key == 0)
    return 0;
  for (i = slot_of(m, key); m->keys[i] != key; i = (i + 1) & m->mask)
    if (m->keys[i] == 0)
      return 0;
  /* Backward-shift: pull later entries of the probe run into the hole. */
  for (j = (i + 1) & m->mask; m->keys[j] != 0; j = (j + 1) & m->mask) {
    size_t home = slot_of(m, m->keys[j]);
    /* Move j into i unless its home lies cyclically in (i, j]. */
    if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      i = j;
    }
  }
  m->keys[i] = 0;
  m->vals[i] = 0;
  m->count--;
  return 1;
}
