/* lp_table.h - per-function line counters and the registry of profiled
 * functions. Counters live in one dense array per function, indexed by
 * line - base. The table keeps its own copies of file and function names,
 * so it can be written out without any Python object.
 *
 * Thread contract: one writer at a time (the thread holding the GIL). When
 * the table belongs to an engine, `sync` is the engine's (lp_sync.h): the
 * writer holds its mutex while it adds a function or grows a line array,
 * so a reader holding the mutex sees consistent (lines, base, nlines)
 * triples and never freed memory. Grown line arrays are also retired, not
 * freed, until lp_table_close. */
#ifndef LP_TABLE_H
#define LP_TABLE_H

#include <stdint.h>

#include "lp_map.h"
#include "lp_sync.h"

typedef enum {
  LP_KIND_FUNCTION = 0,
  LP_KIND_GENERATOR = 1,
  LP_KIND_COROUTINE = 2,
  LP_KIND_ASYNC_GENERATOR = 3
} lp_kind_t;

#define LP_KIND_MAX 3

/* Counters for one line of one function. Times are nanoseconds. */
typedef struct lp_line_s {
  uint64_t hits;  /* line events: times the line started executing */
  uint64_t time;  /* active time on the line, callees included */
  uint64_t await; /* time suspended (await/yield) at the line */
  uint64_t max;   /* longest single uninterrupted active stretch */
} lp_line_t;

typedef struct lp__retired_s lp__retired_t;

typedef struct lp_func_s {
  lp_line_t *lines;    /* nlines counters; lines[i] counts line base + i */
  int32_t base;
  uint32_t nlines;
  int32_t firstlineno; /* as the code object says (first decorator line) */
  lp_kind_t kind;
  char *file;
  char *name;          /* qualified name */
  uintptr_t key;       /* caller's identity for the code object; 0: none */
  lp__retired_t *retired;
  lp_sync_t *sync;     /* its table's */
  uint32_t index;      /* its position in the table's funcs */
} lp_func_t;

typedef struct lp_table_s {
  lp_func_t **funcs; /* in order of registration */
  uint32_t nfuncs;
  uint32_t cap;
  lp_map_t index;    /* key -> lp_func_t * */
  lp_sync_t *sync;   /* the owning engine's, or NULL */
} lp_table_t;

/* Initializes an empty table without a reader (sync NULL). Allocates
 * nothing; cannot fail. */
void lp_table_init(lp_table_t *t);

/* Frees every function, its names and its counters. sync is kept. */
void lp_table_close(lp_table_t *t);

/* Registers a function whose lines are expected in [first, last] and
 * stores it in *out. file and name are copied. key, when nonzero, must be
 * unique: adding an existing key returns the existing function unchanged.
 * Returns 0, LP_EINVAL (bad kind, last < first, or a range over 10 million
 * lines) or LP_ENOMEM; on error the table is unchanged. */
int lp_table_add(lp_table_t *t, uintptr_t key, const char *file,
                 const char *name, int32_t firstlineno, int32_t first,
                 int32_t last, lp_kind_t kind, lp_func_t **out);

/* Returns the function registered under key, or NULL. */
static inline lp_func_t *lp_table_find(const lp_table_t *t, uintptr_t key) {
  uintptr_t v;
  return lp_map_get(&t->index, key, &v) ? (lp_func_t *)v : NULL;
}

/* Zeroes every counter. Registered functions stay. */
void lp_table_clear(lp_table_t *t);

/* Whether lineno lies inside f's array. */
static inline int lp_func_covers(const lp_func_t *f, int32_t lineno) {
  return (uint32_t)((int64_t)lineno - f->base) < f->nlines;
}

/* Returns the counters of lineno, or NULL if it lies outside the array. */
static inline lp_line_t *lp_func_line(lp_func_t *f, int32_t lineno) {
  return lp_func_covers(f, lineno) ? &f->lines[lineno - f->base] : NULL;
}

/* Grows f's array to hold lineno (lineno >= 1) and returns its counters in
 * *out. The old array is retired, not freed. Returns 0, LP_EINVAL (a line
 * below 1 or a range over 10 million lines) or LP_ENOMEM; on error f is
 * unchanged. */
int lp_func_reserve(lp_func_t *f, int32_t lineno, lp_line_t **out);

/* Returns the counters of lineno, growing the array if needed; NULL only
 * when lp_func_reserve fails. */
static inline lp_line_t *lp_func_line_grow(lp_func_t *f, int32_t lineno) {
  lp_line_t *ln = lp_func_line(f, lineno);
  if (ln == NULL && lp_func_reserve(f, lineno, &ln) != 0)
    return NULL;
  return ln;
}

/* Returns the static name of kind ("function", "generator", "coroutine",
 * "async_generator"), or NULL for an invalid kind. */
const char *lp_kind_name(int kind);

#endif
