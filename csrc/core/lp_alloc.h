/* lp_alloc.h - the core's allocator. Every core allocation goes through
 * these, so tests can inject failures. lp_set_allocator is not thread-safe:
 * call it before any other core function. */
#ifndef LP_ALLOC_H
#define LP_ALLOC_H

#include <stddef.h>

typedef void *(*lp_realloc_cb)(void *ptr, size_t size);

/* Replaces the allocator (NULL restores the C library's realloc/free).
 * realloc_cb(NULL, n) must allocate and realloc_cb(p, 0) must free. */
void lp_set_allocator(lp_realloc_cb realloc_cb);

void *lp__malloc(size_t size);
void *lp__calloc(size_t n, size_t size);
void *lp__realloc(void *ptr, size_t size);
void lp__free(void *ptr);
char *lp__strdup(const char *s);

#endif
