#include "lp_alloc.h"

#include <stdlib.h>
#include <string.h>

static lp_realloc_cb alloc_cb;

void lp_set_allocator(lp_realloc_cb realloc_cb) { alloc_cb = realloc_cb; }

void *lp__realloc(void *ptr, size_t size) {
  if (alloc_cb != NULL)
    return alloc_cb(ptr, size);
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

void *lp__malloc(size_t size) { return lp__realloc(NULL, size ? size : 1); }

void *lp__calloc(size_t n, size_t size) {
  void *p;
  if (size != 0 && n > (size_t)-1 / size)
    return NULL;
  p = lp__malloc(n * size);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

void lp__free(void *ptr) {
  if (ptr != NULL)
    lp__realloc(ptr, 0);
}

char *lp__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = lp__malloc(n);
  if (d != NULL)
    memcpy(d, s, n);
  return d;
}
