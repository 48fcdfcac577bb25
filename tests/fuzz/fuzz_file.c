/* fuzz_file.c - libFuzzer target for the .lprof reader (lp_file_parse).
 *
 * Each input is parsed three ways:
 *   1. as it is, which exercises the header checks (magic, version, length,
 *      CRC);
 *   2. with its header repaired (payload length and CRC-32 recomputed), so
 *      that mutations reach the sections behind the checksum;
 *   3. if 2 succeeded, once more with the N-th allocation failing (N chosen
 *      by the input), which must give LP_ENOMEM and leak nothing.
 * The allocator refuses to hold more than LIVE_LIMIT bytes at once: a FUNC
 * section of a few dozen bytes may declare 10 million lines (320 MB of
 * counters), which would make every run slow and end in an out-of-memory
 * report (see docs/fuzzing.md, findings). The parser must then return
 * LP_ENOMEM, which is checked as well.
 * Every successful parse is re-encoded with lp_file_encode and parsed back:
 * the functions, lines, counters, meta and tasks must come back the same,
 * and encoding the result again must give the same bytes. Any mismatch, or
 * a return code the header does not document, aborts. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_alloc.h"
#include "lp_error.h"
#include "lp_file.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond))                                                             \
      __builtin_trap();                                                      \
  } while (0)

static const uint8_t magic[8] = {0x89, 'L', 'P', 'R', 'O', 'F', '\r', '\n'};

/* ---- a counting allocator that can fail one call ---- */

#define LIVE_LIMIT ((size_t)4 << 20) /* 131,072 lines of counters */

static long allocs;          /* allocating calls since the last arm */
static long fail_at = -1;    /* the allocating call to refuse; -1: none */
static long capped;          /* calls refused for LIVE_LIMIT */
static size_t live;          /* bytes the core holds */

static void *fuzz_realloc(void *ptr, size_t size) {
  size_t old = ptr != NULL ? malloc_usable_size(ptr) : 0;
  void *p;
  if (size == 0) {
    live -= old;
    free(ptr);
    return NULL;
  }
  if (allocs++ == fail_at)
    return NULL;
  if (live - old + size > LIVE_LIMIT) {
    capped++;
    return NULL;
  }
  if ((p = realloc(ptr, size)) != NULL)
    live = live - old + malloc_usable_size(p);
  return p;
}

static void alloc_arm(long n) {
  allocs = 0;
  capped = 0;
  fail_at = n;
}

/* ---- checks ---- */

static int documented(int err) {
  return err == 0 || err == LP_EBADMAGIC || err == LP_EVERSION ||
         err == LP_ETRUNC || err == LP_ECORRUPT || err == LP_EFORMAT ||
         err == LP_ENOMEM;
}

static int line_used(const lp_line_t *ln) {
  return ln->hits != 0 || ln->time != 0 || ln->await != 0;
}

/* What the reader promises about a profile it accepted. */
static void check_profile(const lp_profile_t *p) {
  uint32_t i;
  CHECK(p->version >= 1 && p->version <= LP_FILE_VERSION);
  CHECK(p->meta.count == 0 || (p->meta.keys && p->meta.vals));
  for (i = 0; i < p->meta.count; i++)
    CHECK(p->meta.keys[i] != NULL && p->meta.vals[i] != NULL);
  for (i = 0; i < p->table.nfuncs; i++) {
    const lp_func_t *f = p->table.funcs[i];
    CHECK(f != NULL && f->file != NULL && f->name != NULL);
    CHECK(f->base >= 1 && f->nlines >= 1);
    CHECK((int64_t)f->base + f->nlines - 1 <= INT32_MAX);
    CHECK((int)f->kind >= 0 && f->kind <= LP_KIND_MAX);
    CHECK(f->lines != NULL && f->index == i);
  }
  CHECK(p->nnow == 0 || (p->now != NULL && p->has_now));
  for (i = 0; i < p->nnow; i++)
    CHECK(p->now[i].func < p->table.nfuncs);
  CHECK(p->ntasks == 0 || p->tasks != NULL);
  for (i = 0; i < p->ntasks; i++)
    CHECK(p->tasks[i].name != NULL && p->tasks[i].coro != NULL);
}

/* b, parsed back from a's encoding, holds the same data. Lines that the
 * writer leaves out (no hits, time or await) must come back all zero. */
static void check_same(const lp_profile_t *a, const lp_profile_t *b) {
  uint32_t i, j;
  CHECK(b->version == LP_FILE_VERSION);
  CHECK(a->meta.count == b->meta.count);
  for (i = 0; i < a->meta.count; i++) {
    CHECK(strcmp(a->meta.keys[i], b->meta.keys[i]) == 0);
    CHECK(strcmp(a->meta.vals[i], b->meta.vals[i]) == 0);
  }
  CHECK(a->table.nfuncs == b->table.nfuncs);
  for (i = 0; i < a->table.nfuncs; i++) {
    const lp_func_t *f = a->table.funcs[i], *g = b->table.funcs[i];
    CHECK(strcmp(f->file, g->file) == 0 && strcmp(f->name, g->name) == 0);
    CHECK(f->firstlineno == g->firstlineno && f->kind == g->kind);
    CHECK(f->base == g->base && f->nlines == g->nlines);
    for (j = 0; j < f->nlines; j++) {
      const lp_line_t *x = &f->lines[j], *y = &g->lines[j];
      if (line_used(x)) {
        CHECK(x->hits == y->hits && x->time == y->time);
        CHECK(x->await == y->await && x->max == y->max);
      } else {
        CHECK(y->hits == 0 && y->time == 0 && y->await == 0 && y->max == 0);
      }
    }
  }
  CHECK(a->ntasks == b->ntasks);
  for (i = 0; i < a->ntasks; i++) {
    const lp_task_t *s = &a->tasks[i], *t = &b->tasks[i];
    CHECK(s->id == t->id && s->time == t->time && s->await == t->await);
    CHECK(s->first == t->first && s->last == t->last);
    CHECK(s->folded == t->folded);
    CHECK(strcmp(s->name, t->name) == 0 && strcmp(s->coro, t->coro) == 0);
  }
  CHECK(a->has_now == b->has_now && a->nnow == b->nnow);
  for (i = 0; i < a->nnow; i++) {
    const lp_now_t *m = &a->now[i], *n = &b->now[i];
    CHECK(m->thread == n->thread && m->task == n->task);
    CHECK(m->elapsed == n->elapsed && m->func == n->func);
    CHECK(m->lineno == n->lineno);
  }
}

/* Encodes everything p holds (t0 = 0 keeps task times as they are).
 * Returns lp_file_encode_parts's code. */
static int encode(const lp_profile_t *p, lp_buf_t *buf) {
  lp_file_parts_t parts;
  memset(buf, 0, sizeof(*buf));
  memset(&parts, 0, sizeof(parts));
  parts.table = &p->table;
  parts.meta = &p->meta;
  parts.task_list = p->ntasks ? p->tasks : NULL;
  parts.ntasks = p->ntasks;
  parts.now = p->now;
  parts.nnow = p->nnow;
  parts.with_now = p->has_now;
  return lp_file_encode_parts(&parts, buf);
}

/* Re-encodes p, parses that back and compares. Skipped (returns) only
 * when the allocator's LIVE_LIMIT refuses memory. */
static void round_trip(const lp_profile_t *p) {
  lp_buf_t b1, b2;
  lp_profile_t q;
  int err;
  b2.data = NULL;
  if ((err = encode(p, &b1)) != 0) {
    CHECK(err == LP_ENOMEM && capped > 0);
    goto out;
  }
  err = lp_file_parse(b1.data, b1.len, &q);
  if (err == LP_ENOMEM && capped > 0) {
    lp_profile_close(&q);
    goto out;
  }
  CHECK(err == 0);
  check_profile(&q);
  check_same(p, &q);
  /* Once normalized, encoding is a fixed point. */
  err = encode(&q, &b2);
  CHECK(err == 0 || (err == LP_ENOMEM && capped > 0));
  if (err == 0)
    CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
  lp_profile_close(&q);
out:
  lp__free(b1.data);
  lp__free(b2.data);
}

/* Parses data and, on success, checks it and round-trips it. Returns the
 * parse's code. */
static int parse_and_check(const uint8_t *data, size_t size) {
  lp_profile_t p;
  int err = lp_file_parse(data, size, &p);
  CHECK(documented(err));
  CHECK(err != LP_ENOMEM || capped > 0); /* no failure armed */
  if (err == 0) {
    check_profile(&p);
    round_trip(&p);
  }
  lp_profile_close(&p);
  return err;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  lp_set_allocator(fuzz_realloc);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *fixed;
  long needed;
  int err;

  alloc_arm(-1);
  parse_and_check(data, size);

  /* The same bytes behind a valid header: right length and CRC. */
  if (size < LP_FILE_HEADER_SIZE || memcmp(data, magic, sizeof(magic)) != 0)
    return 0;
  fixed = malloc(size);
  CHECK(fixed != NULL);
  memcpy(fixed, data, size);
  put32(fixed + 16, (uint32_t)(size - LP_FILE_HEADER_SIZE));
  put32(fixed + 20, (uint32_t)((uint64_t)(size - LP_FILE_HEADER_SIZE) >> 32));
  put32(fixed + 24, lp_crc32(fixed + LP_FILE_HEADER_SIZE,
                             size - LP_FILE_HEADER_SIZE));
  alloc_arm(-1);
  err = parse_and_check(fixed, size);

  /* Allocation failure: parse again failing one of the allocations a
   * successful parse makes (chosen by the input's last byte). */
  if (err == 0) {
    lp_profile_t p;
    alloc_arm(-1);
    CHECK(lp_file_parse(fixed, size, &p) == 0);
    lp_profile_close(&p);
    needed = allocs;
    if (needed > 0 && capped == 0) {
      alloc_arm((long)(data[size - 1] % needed));
      err = lp_file_parse(fixed, size, &p);
      CHECK(err == LP_ENOMEM);
      lp_profile_close(&p);
      alloc_arm(-1);
    }
  }
  free(fixed);
  return 0;
}
