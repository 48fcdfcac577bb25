#include "lp_table.h"

#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"

#define LP_MAX_LINES 10000000

struct lp__retired_s {
  lp__retired_t *next;
  lp_line_t *lines;
};

void lp_table_init(lp_table_t *t) {
  t->sync = NULL;
  t->funcs = NULL;
  t->nfuncs = 0;
  t->cap = 0;
  lp_map_init(&t->index);
}

static void func_free(lp_func_t *f) {
  lp__retired_t *r = f->retired, *next;
  for (; r != NULL; r = next) {
    next = r->next;
    lp__free(r->lines);
    lp__free(r);
  }
  lp__free(f->lines);
  lp__free(f->file);
  lp__free(f->name);
  lp__free(f);
}

void lp_table_close(lp_table_t *t) {
  lp_sync_t *sync = t->sync;
  uint32_t i;
  lp__sync_lock(sync);
  for (i = 0; i < t->nfuncs; i++)
    func_free(t->funcs[i]);
  lp__free(t->funcs);
  lp_map_close(&t->index);
  lp_table_init(t);
  t->sync = sync;
  lp__sync_unlock(sync);
}

const char *lp_kind_name(int kind) {
  static const char *const names[] = {"function", "generator", "coroutine",
                                      "async_generator"};
  return kind >= 0 && kind <= LP_KIND_MAX ? names[kind] : NULL;
}

int lp_table_add(lp_table_t *t, uintptr_t key, const char *file,
                 const char *name, int32_t firstlineno, int32_t first,
                 int32_t last, lp_kind_t kind, lp_func_t **out) {
  lp_func_t *f;
  int err;
  if (key != 0 && (f = lp_table_find(t, key)) != NULL) {
    *out = f;
    return 0;
  }
  if ((int)kind < 0 || kind > LP_KIND_MAX || first < 1 || last < first ||
      (int64_t)last - first >= LP_MAX_LINES || file == NULL || name == NULL)
    return LP_EINVAL;
  if (t->nfuncs == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 16;
    lp_func_t **nf;
    lp__sync_lock(t->sync);
    nf = lp__realloc(t->funcs, cap * sizeof(*nf));
    if (nf != NULL) {
      t->funcs = nf;
      t->cap = cap;
    }
    lp__sync_unlock(t->sync);
    if (nf == NULL)
      return LP_ENOMEM;
  }
  f = lp__calloc(1, sizeof(*f));
  if (f == NULL)
    return LP_ENOMEM;
  f->base = first;
  f->nlines = (uint32_t)(last - first + 1);
  f->firstlineno = firstlineno;
  f->kind = kind;
  f->key = key;
  f->sync = t->sync;
  f->lines = lp__calloc(f->nlines, sizeof(lp_line_t));
  f->file = lp__strdup(file);
  f->name = lp__strdup(name);
  if (f->lines == NULL || f->file == NULL || f->name == NULL) {
    func_free(f);
    return LP_ENOMEM;
  }
  if (key != 0 && (err = lp_map_put(&t->index, key, (uintptr_t)f)) != 0) {
    func_free(f);
    return err;
  }
  f->index = t->nfuncs;
  lp__sync_lock(t->sync);
  t->funcs[t->nfuncs++] = f;
  lp__sync_unlock(t->sync);
  *out = f;
  return 0;
}

void lp_table_clear(lp_table_t *t) {
  uint32_t i;
  for (i = 0; i < t->nfuncs; i++)
    memset(t->funcs[i]->lines, 0, t->funcs[i]->nlines * sizeof(lp_line_t));
}

int lp_func_reserve(lp_func_t *f, int32_t lineno, lp_line_t **out) {
  int64_t lo = f->base, hi = (int64_t)f->base + f->nlines - 1;
  lp__retired_t *r;
  lp_line_t *nl;
  if (lineno < 1)
    return LP_EINVAL;
  if (lineno >= lo && lineno <= hi) {
    *out = &f->lines[lineno - lo];
    return 0;
  }
  if (lineno < lo)
    lo = lineno;
  else
    hi = lineno;
  if (hi - lo >= LP_MAX_LINES)
    return LP_EINVAL;
  r = lp__malloc(sizeof(*r));
  nl = lp__calloc((size_t)(hi - lo + 1), sizeof(lp_line_t));
  if (r == NULL || nl == NULL) {
    lp__free(r);
    lp__free(nl);
    return LP_ENOMEM;
  }
  lp__sync_lock(f->sync);
  memcpy(nl + (f->base - lo), f->lines, f->nlines * sizeof(lp_line_t));
  r->lines = f->lines;
  r->next = f->retired;
  f->retired = r;
  f->lines = nl;
  f->base = (int32_t)lo;
  f->nlines = (uint32_t)(hi - lo + 1);
  lp__sync_unlock(f->sync);
  *out = &nl[lineno - lo];
  return 0;
}
