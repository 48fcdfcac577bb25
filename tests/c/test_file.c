/* test_file.c - lp_file: the .lprof writer and reader.
 *
 * Files are checked against hand-assembled bytes (a small byte builder and
 * a bitwise CRC-32 written here, independent of lp_file.c), and the reader
 * is fed every truncation, every flipped byte and hand-made malformed
 * sections. */
#include "lp_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lp_file.h"

/* ---- an independent CRC-32 and byte builder ---- */

/* Bitwise CRC-32 (reflected, polynomial 0xEDB88320). */
static uint32_t ref_crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  size_t i;
  int k;
  for (i = 0; i < n; i++) {
    c ^= p[i];
    for (k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

typedef struct {
  uint8_t d[8192];
  size_t len;
} bb_t;

static void bb_bytes(bb_t *b, const void *p, size_t n) {
  assert_true(b->len + n <= sizeof(b->d));
  memcpy(b->d + b->len, p, n);
  b->len += n;
}
static void bb_u32(bb_t *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  bb_bytes(b, x, 4);
}
static void bb_u64(bb_t *b, uint64_t v) {
  bb_u32(b, (uint32_t)v);
  bb_u32(b, (uint32_t)(v >> 32));
}
static void bb_str(bb_t *b, const char *s) {
  bb_u32(b, (uint32_t)strlen(s));
  bb_bytes(b, s, strlen(s));
}
static void bb_set32(bb_t *b, size_t at, uint32_t v) {
  b->d[at] = (uint8_t)v;
  b->d[at + 1] = (uint8_t)(v >> 8);
  b->d[at + 2] = (uint8_t)(v >> 16);
  b->d[at + 3] = (uint8_t)(v >> 24);
}
static void bb_set64(bb_t *b, size_t at, uint64_t v) {
  bb_set32(b, at, (uint32_t)v);
  bb_set32(b, at + 4, (uint32_t)(v >> 32));
}
/* The header, with payload length and CRC left for bb_finish. */
static void bb_header(bb_t *b, uint32_t version) {
  static const uint8_t magic[8] = {0x89, 'L', 'P', 'R', 'O', 'F', '\r', '\n'};
  b->len = 0;
  bb_bytes(b, magic, 8);
  bb_u32(b, version);
  bb_u32(b, 32);
  bb_u64(b, 0);
  bb_u32(b, 0);
  bb_u32(b, 0);
}
/* Opens a section: tag, then a length to patch; returns its offset. */
static size_t bb_open(bb_t *b, const char tag[4]) {
  bb_bytes(b, tag, 4);
  bb_u64(b, 0);
  return b->len - 8;
}
static void bb_close(bb_t *b, size_t at) {
  bb_set64(b, at, b->len - at - 8);
}
/* Patches the payload length and CRC into the header. */
static void bb_finish(bb_t *b) {
  bb_set64(b, 16, b->len - 32);
  bb_set32(b, 24, ref_crc32(b->d + 32, b->len - 32));
}
static void bb_line(bb_t *b, int32_t line, uint64_t hits, uint64_t time,
                    uint64_t await, uint64_t max) {
  bb_u32(b, (uint32_t)line);
  bb_u64(b, hits);
  bb_u64(b, time);
  bb_u64(b, await);
  bb_u64(b, max);
}

/* Parses an exact-size heap copy (so ASan sees any read past the end),
 * closes the profile and returns the code. */
static int parse_copy(const uint8_t *data, size_t len) {
  lp_profile_t p;
  uint8_t *copy = malloc(len ? len : 1);
  int err;
  assert_non_null(copy);
  memcpy(copy, data, len);
  err = lp_file_parse(copy, len, &p);
  lp_profile_close(&p);
  free(copy);
  return err;
}

/* ---- tables used below ---- */

#define KA ((uintptr_t)0x7f0000001000u)
#define KB ((uintptr_t)0x7f0000002000u)
#define KC ((uintptr_t)0x7f0000003000u)
#define KD ((uintptr_t)0x7f0000004000u)

static void set_line(lp_func_t *f, int32_t l, uint64_t hits, uint64_t time,
                     uint64_t await, uint64_t max) {
  lp_line_t *ln = lp_func_line(f, l);
  assert_non_null(ln);
  ln->hits = hits;
  ln->time = time;
  ln->await = await;
  ln->max = max;
}

/* Four functions and four meta pairs:
 *   A  function, lines 10..14: 10, 12 (await only), 13 (time only) used
 *   B  coroutine, line 21: nothing used
 *   C  async generator at the top of the line range, extreme counters
 *   D  generator, line 1 with only max set: not "used", left out
 * Encoded size, by hand:
 *   header                                                    32
 *   META: 12 + 4 + (10+10) + (4+13) + (8+9) + (9+4)          83
 *   A: 12 + (4+10) + (4+10) + 20 + 3*36                      168
 *   B: 12 + (4+10) + (4+4) + 20                               54
 *   C: 12 + (4+16) + (4+13) + 20 + 36                        105
 *   D: 12 + (4+4) + (4+0) + 20                                44
 *   total                                                    486 */
#define RICH_SIZE 486
#define RICH_C_FILE "\xc3\xbcn\xc3\xaf/\xc3\xa7\xc3\xb8" "d\xc3\xa9.py"

static void make_rich(lp_table_t *t, lp_meta_t *m) {
  lp_func_t *f;
  lp_table_init(t);
  memset(m, 0, sizeof(*m));
  assert_int_equal(lp_table_add(t, KA, "src/app.py", "App.handle", 9, 10, 14,
                                LP_KIND_FUNCTION, &f),
                   0);
  set_line(f, 10, 3, 100, 0, 60);
  set_line(f, 12, 0, 0, 5, 0);
  set_line(f, 13, 0, 7, 0, 7);
  assert_int_equal(lp_table_add(t, KB, "src/app.py", "idle", 20, 21, 21,
                                LP_KIND_COROUTINE, &f),
                   0);
  assert_int_equal(lp_table_add(t, KC, RICH_C_FILE, "gen<locals>.x",
                                INT32_MAX - 5, INT32_MAX - 2, INT32_MAX,
                                LP_KIND_ASYNC_GENERATOR, &f),
                   0);
  set_line(f, INT32_MAX, UINT64_MAX, UINT64_MAX - 1, 1ull << 63,
           0x0123456789ABCDEFull);
  assert_int_equal(
      lp_table_add(t, KD, "b.py", "", 1, 1, 1, LP_KIND_GENERATOR, &f), 0);
  set_line(f, 1, 0, 0, 0, 99);
  assert_int_equal(lp_meta_add(m, "python", "3.12.1"), 0);
  assert_int_equal(lp_meta_add(m, "", "empty key"), 0);
  assert_int_equal(lp_meta_add(m, "argv", "x y z"), 0);
  assert_int_equal(lp_meta_add(m, "empty", ""), 0);
}

#define ASSERT_LINE(func, l, h, tm, aw, mx)                                  \
  do {                                                                       \
    const lp_line_t *ln_ = lp_func_line((func), (l));                        \
    assert_non_null(ln_);                                                    \
    assert_int_equal(ln_->hits, (h));                                        \
    assert_int_equal(ln_->time, (tm));                                       \
    assert_int_equal(ln_->await, (aw));                                      \
    assert_int_equal(ln_->max, (mx));                                        \
  } while (0)

/* Checks a profile read back from make_rich's table and meta. */
static void check_rich(const lp_profile_t *p) {
  lp_func_t *f;
  assert_int_equal(p->version, 1);
  assert_int_equal(p->meta.count, 4);
  assert_string_equal(p->meta.keys[0], "python");
  assert_string_equal(p->meta.vals[0], "3.12.1");
  assert_string_equal(p->meta.keys[1], "");
  assert_string_equal(p->meta.vals[1], "empty key");
  assert_string_equal(p->meta.keys[2], "argv");
  assert_string_equal(p->meta.vals[2], "x y z");
  assert_string_equal(p->meta.keys[3], "empty");
  assert_string_equal(p->meta.vals[3], "");
  assert_int_equal(p->table.nfuncs, 4);

  f = p->table.funcs[0];
  assert_string_equal(f->file, "src/app.py");
  assert_string_equal(f->name, "App.handle");
  assert_int_equal(f->firstlineno, 9);
  assert_int_equal(f->kind, LP_KIND_FUNCTION);
  assert_int_equal(f->base, 10);
  assert_int_equal(f->nlines, 5);
  assert_int_equal(f->key, 0); /* keys are the writer's; not stored */
  ASSERT_LINE(f, 10, 3, 100, 0, 60);
  ASSERT_LINE(f, 11, 0, 0, 0, 0);
  ASSERT_LINE(f, 12, 0, 0, 5, 0);
  ASSERT_LINE(f, 13, 0, 7, 0, 7);
  ASSERT_LINE(f, 14, 0, 0, 0, 0);

  f = p->table.funcs[1];
  assert_string_equal(f->file, "src/app.py");
  assert_string_equal(f->name, "idle");
  assert_int_equal(f->firstlineno, 20);
  assert_int_equal(f->kind, LP_KIND_COROUTINE);
  assert_int_equal(f->base, 21);
  assert_int_equal(f->nlines, 1);
  ASSERT_LINE(f, 21, 0, 0, 0, 0);

  f = p->table.funcs[2];
  assert_string_equal(f->file, RICH_C_FILE);
  assert_string_equal(f->name, "gen<locals>.x");
  assert_int_equal(f->firstlineno, INT32_MAX - 5);
  assert_int_equal(f->kind, LP_KIND_ASYNC_GENERATOR);
  assert_int_equal(f->base, INT32_MAX - 2);
  assert_int_equal(f->nlines, 3);
  ASSERT_LINE(f, INT32_MAX - 2, 0, 0, 0, 0);
  ASSERT_LINE(f, INT32_MAX, UINT64_MAX, UINT64_MAX - 1, 1ull << 63,
              0x0123456789ABCDEFull);

  f = p->table.funcs[3];
  assert_string_equal(f->file, "b.py");
  assert_string_equal(f->name, "");
  assert_int_equal(f->kind, LP_KIND_GENERATOR);
  assert_int_equal(f->base, 1);
  assert_int_equal(f->nlines, 1);
  ASSERT_LINE(f, 1, 0, 0, 0, 0); /* max alone is not kept */
}

/* Encodes the rich profile into buf (caller frees buf->data). */
static void encode_rich(lp_buf_t *buf) {
  lp_table_t t;
  lp_meta_t m;
  make_rich(&t, &m);
  memset(buf, 0, sizeof(*buf));
  assert_int_equal(lp_file_encode(&t, &m, NULL, 0, buf), 0);
  assert_int_equal(buf->len, RICH_SIZE);
  lp_table_close(&t);
  lp_meta_close(&m);
}

/* The smallest interesting file, byte by byte: no meta, one coroutine "g"
 * in "f", first line 1, lines 1..2, line 2 = (1, 2, 3, 4). The CRC was
 * computed with zlib.crc32 over bytes 32..109. */
static const uint8_t golden[110] = {
    0x89, 'L',  'P',  'R',  'O',  'F',  '\r', '\n', /* magic */
    1,    0,    0,    0,                            /* version 1 */
    32,   0,    0,    0,                            /* header size */
    78,   0,    0,    0,    0,    0,    0,    0,    /* payload length */
    0xbb, 0xe6, 0xff, 0x35,                         /* CRC 0x35ffe6bb */
    0,    0,    0,    0,                            /* flags */
    'F',  'U',  'N',  'C',  66,   0,    0,    0,    0, 0, 0, 0,
    1,    0,    0,    0,    'f',                    /* file */
    1,    0,    0,    0,    'g',                    /* name */
    1,    0,    0,    0,                            /* firstlineno */
    2,    0,    0,    0,                            /* kind */
    1,    0,    0,    0,                            /* base */
    2,    0,    0,    0,                            /* nlines */
    1,    0,    0,    0,                            /* used */
    2,    0,    0,    0,                            /* line 2 */
    1,    0,    0,    0,    0,    0,    0,    0,    /* hits */
    2,    0,    0,    0,    0,    0,    0,    0,    /* time */
    3,    0,    0,    0,    0,    0,    0,    0,    /* await */
    4,    0,    0,    0,    0,    0,    0,    0,    /* max */
};

/* ---- CRC ---- */

/* lp_file.h promises that its functions share no state. Several threads
 * computing their first CRC at once must each get the right value without
 * a data race. This must be the process's first lp_crc32 call, so it runs
 * first; a TSan build (-DLINEPROF_SANITIZE=thread) checks the race. */
enum { CRC_THREADS = 8 };
static pthread_barrier_t crc_barrier;

static void *crc_thread(void *arg) {
  uint32_t *out = arg;
  pthread_barrier_wait(&crc_barrier);
  *out = lp_crc32("123456789", 9);
  return NULL;
}

static void test_crc32_concurrent_first_use(void **state) {
  pthread_t th[CRC_THREADS];
  uint32_t got[CRC_THREADS];
  int i;
  (void)state;
  assert_int_equal(pthread_barrier_init(&crc_barrier, NULL, CRC_THREADS), 0);
  for (i = 0; i < CRC_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, crc_thread, &got[i]), 0);
  for (i = 0; i < CRC_THREADS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  pthread_barrier_destroy(&crc_barrier);
  for (i = 0; i < CRC_THREADS; i++)
    assert_int_equal(got[i], 0xCBF43926u);
}

static void test_crc32(void **state) {
  static const char fox[] = "The quick brown fox jumps over the lazy dog";
  uint8_t buf[1000];
  size_t i;
  (void)state;
  assert_int_equal(lp_crc32("123456789", 9), 0xCBF43926u);
  assert_int_equal(lp_crc32("", 0), 0);
  assert_int_equal(lp_crc32("a", 1), 0xE8B7BE43u);
  assert_int_equal(lp_crc32(fox, strlen(fox)), 0x414FA339u);
  /* The reference used to build files here agrees with the vectors... */
  assert_int_equal(ref_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
  assert_int_equal(ref_crc32((const uint8_t *)fox, strlen(fox)), 0x414FA339u);
  /* ... and with lp_crc32 on every prefix of a pattern. */
  for (i = 0; i < sizeof(buf); i++)
    buf[i] = (uint8_t)(i * 131 + 7);
  for (i = 0; i <= sizeof(buf); i += 37)
    assert_int_equal(lp_crc32(buf, i), ref_crc32(buf, i));
  assert_int_equal(lp_crc32(golden + 32, 78), 0x35ffe6bbu);
}

/* ---- encoding ---- */

static void test_encode_golden(void **state) {
  lp_table_t t;
  lp_func_t *f;
  lp_buf_t b = {0};
  (void)state;
  lp_table_init(&t);
  assert_int_equal(lp_table_add(&t, 0, "f", "g", 1, 1, 2, LP_KIND_COROUTINE,
                                &f),
                   0);
  set_line(f, 2, 1, 2, 3, 4);
  assert_int_equal(lp_file_encode(&t, NULL, NULL, 0, &b), 0);
  assert_int_equal(b.len, sizeof(golden));
  assert_memory_equal(b.data, golden, sizeof(golden));
  assert_int_equal(b.err, 0);
  lp__free(b.data);
  lp_table_close(&t);
}

static void test_parse_golden(void **state) {
  lp_profile_t p;
  lp_func_t *f;
  (void)state;
  assert_int_equal(lp_file_parse(golden, sizeof(golden), &p), 0);
  assert_int_equal(p.version, 1);
  assert_int_equal(p.meta.count, 0);
  assert_int_equal(p.table.nfuncs, 1);
  f = p.table.funcs[0];
  assert_string_equal(f->file, "f");
  assert_string_equal(f->name, "g");
  assert_int_equal(f->firstlineno, 1);
  assert_int_equal(f->kind, LP_KIND_COROUTINE);
  assert_int_equal(f->base, 1);
  assert_int_equal(f->nlines, 2);
  ASSERT_LINE(f, 1, 0, 0, 0, 0);
  ASSERT_LINE(f, 2, 1, 2, 3, 4);
  lp_profile_close(&p);
}

static void test_encode_empty(void **state) {
  static const uint8_t empty[32] = {0x89, 'L', 'P', 'R', 'O', 'F', '\r', '\n',
                                    1,    0,   0,   0,   32,  0,   0,    0};
  lp_table_t t;
  lp_meta_t m = {0};
  lp_buf_t b = {0};
  lp_profile_t p;
  (void)state;
  /* No functions and no meta (NULL or empty): just the header, payload
   * length 0, CRC of nothing = 0. */
  lp_table_init(&t);
  assert_int_equal(lp_file_encode(&t, NULL, NULL, 0, &b), 0);
  assert_int_equal(b.len, 32);
  assert_memory_equal(b.data, empty, 32);
  lp__free(b.data);
  memset(&b, 0, sizeof(b));
  assert_int_equal(lp_file_encode(&t, &m, NULL, 0, &b), 0);
  assert_int_equal(b.len, 32);
  assert_memory_equal(b.data, empty, 32);
  assert_int_equal(lp_file_parse(b.data, b.len, &p), 0);
  assert_int_equal(p.table.nfuncs, 0);
  assert_int_equal(p.meta.count, 0);
  assert_int_equal(p.version, 1);
  lp_profile_close(&p);
  lp__free(b.data);
  lp_table_close(&t);
}

static void test_round_trip(void **state) {
  lp_buf_t b;
  lp_profile_t p;
  (void)state;
  encode_rich(&b);
  /* Header fields. */
  assert_int_equal(b.data[0], 0x89);
  assert_memory_equal(b.data + 1, "LPROF\r\n", 7);
  assert_int_equal(b.data[8], 1);
  assert_int_equal(b.data[12], 32);
  assert_int_equal(b.data[16], (RICH_SIZE - 32) & 0xFF);
  assert_int_equal(b.data[17], (RICH_SIZE - 32) >> 8);
  assert_int_equal(b.data[28] | b.data[29] | b.data[30] | b.data[31], 0);
  assert_int_equal((uint32_t)b.data[24] | (uint32_t)b.data[25] << 8 |
                       (uint32_t)b.data[26] << 16 | (uint32_t)b.data[27] << 24,
                   ref_crc32(b.data + 32, RICH_SIZE - 32));
  /* The META section comes first. */
  assert_memory_equal(b.data + 32, "META", 4);
  assert_int_equal(b.data[36], 83 - 12);
  assert_memory_equal(b.data + 32 + 83, "FUNC", 4);
  assert_int_equal(b.data[32 + 83 + 4], 168 - 12);

  assert_int_equal(lp_file_parse(b.data, b.len, &p), 0);
  check_rich(&p);
  lp_profile_close(&p);

  /* A parsed profile encodes to the same bytes. */
  assert_int_equal(lp_file_parse(b.data, b.len, &p), 0);
  {
    lp_buf_t b2 = {0};
    assert_int_equal(lp_file_encode(&p.table, &p.meta, NULL, 0, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    lp__free(b2.data);
  }
  lp_profile_close(&p);
  lp__free(b.data);
}

static void test_encode_oom(void **state) {
  lp_table_t t;
  lp_meta_t m;
  lp_func_t *f;
  lp_buf_t b = {0};
  int32_t l;
  (void)state;
  /* The first buffer (4096 bytes) cannot be had. */
  make_rich(&t, &m);
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_file_encode(&t, &m, NULL, 0, &b), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_int_equal(b.err, LP_ENOMEM);
  assert_null(b.data);
  lp_table_close(&t);
  lp_meta_close(&m);

  /* 200 used lines: 32 + 12 + 5 + 5 + 20 + 200 * 36 = 7274 bytes, so the
   * buffer doubles once (4096 -> 8192); that second allocation fails. */
  lp_table_init(&t);
  assert_int_equal(
      lp_table_add(&t, KA, "a", "b", 1, 1, 200, LP_KIND_FUNCTION, &f), 0);
  for (l = 1; l <= 200; l++)
    set_line(f, l, (uint64_t)l, 1, 0, 1);
  memset(&b, 0, sizeof(b));
  lp_test_alloc_fail_at(1);
  assert_int_equal(lp_file_encode(&t, NULL, NULL, 0, &b), LP_ENOMEM);
  assert_int_equal(lp_test_alloc.allocs, 2); /* sticky: no more tries */
  lp_test_alloc_reset();
  lp__free(b.data);
  memset(&b, 0, sizeof(b));
  assert_int_equal(lp_file_encode(&t, NULL, NULL, 0, &b), 0);
  assert_int_equal(b.len, 7274);
  assert_int_equal(b.cap, 8192);
  lp__free(b.data);
  lp_table_close(&t);
}

static void test_meta_add_oom(void **state) {
  lp_meta_t m = {0};
  long n;
  (void)state;
  assert_int_equal(lp_meta_add(&m, "k", "v"), 0);
  /* Four allocations: two arrays, two strings. */
  for (n = 0; n < 4; n++) {
    lp_test_alloc_fail_at(n);
    assert_int_equal(lp_meta_add(&m, "k2", "v2"), LP_ENOMEM);
    assert_int_equal(lp_test_alloc.allocs, n < 2 ? n + 1 : 4);
    lp_test_alloc_reset();
    assert_int_equal(m.count, 1);
    assert_string_equal(m.keys[0], "k");
    assert_string_equal(m.vals[0], "v");
  }
  lp_test_alloc_count();
  assert_int_equal(lp_meta_add(&m, "k2", "v2"), 0);
  assert_int_equal(lp_test_alloc.allocs, 4);
  lp_test_alloc_reset();
  assert_int_equal(m.count, 2);
  assert_string_equal(m.keys[1], "k2");
  assert_string_equal(m.vals[1], "v2");
  lp_meta_close(&m);
  assert_int_equal(m.count, 0);
  assert_null(m.keys);
  lp_meta_close(&m); /* twice is fine */
}

/* ---- the reader's errors ---- */

static void test_parse_short(void **state) {
  static const uint8_t bad[8] = {0x89, 'L', 'X', 'R', 'O', 'F', '\r', '\n'};
  uint8_t copy[110];
  (void)state;
  assert_int_equal(parse_copy(golden, 0), LP_ETRUNC);
  assert_int_equal(parse_copy(golden, 3), LP_ETRUNC); /* 3 bytes of magic */
  assert_int_equal(parse_copy(golden, 8), LP_ETRUNC); /* magic, no header */
  assert_int_equal(parse_copy(bad, 3), LP_EBADMAGIC);
  assert_int_equal(parse_copy(bad, 4), LP_EBADMAGIC);
  assert_int_equal(parse_copy(bad, 8), LP_EBADMAGIC);
  assert_int_equal(parse_copy((const uint8_t *)"PK\3\4", 4), LP_EBADMAGIC);
  memcpy(copy, golden, sizeof(copy));
  copy[0] = 0x88;
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EBADMAGIC);
  memcpy(copy, golden, sizeof(copy));
  copy[7] = '\r'; /* a text-mode transfer mangled the line ending */
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EBADMAGIC);
}

static void test_parse_every_truncation(void **state) {
  lp_buf_t b;
  size_t n;
  (void)state;
  /* Every proper prefix of a valid file is a truncated file. */
  for (n = 0; n < sizeof(golden); n++)
    assert_int_equal(parse_copy(golden, n), LP_ETRUNC);
  encode_rich(&b);
  for (n = 0; n < b.len; n++)
    assert_int_equal(parse_copy(b.data, n), LP_ETRUNC);
  assert_int_equal(parse_copy(b.data, b.len), 0);
  lp__free(b.data);
}

static void test_parse_flip_payload(void **state) {
  static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x5A};
  lp_buf_t b;
  size_t i, k;
  (void)state;
  /* CRC-32 catches every single-byte change. */
  encode_rich(&b);
  for (i = 32; i < b.len; i++) {
    for (k = 0; k < sizeof(masks); k++) {
      b.data[i] ^= masks[k];
      assert_int_equal(parse_copy(b.data, b.len), LP_ECORRUPT);
      b.data[i] ^= masks[k];
    }
  }
  assert_int_equal(parse_copy(b.data, b.len), 0);
  lp__free(b.data);
}

static void test_parse_flip_header(void **state) {
  static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x5A};
  const uint64_t paylen = RICH_SIZE - 32;
  lp_buf_t b;
  lp_profile_t p;
  size_t i, k;
  (void)state;
  encode_rich(&b);
  for (i = 0; i < 32; i++) {
    for (k = 0; k < sizeof(masks); k++) {
      int expect;
      if (i < 8) {
        expect = LP_EBADMAGIC;
      } else if (i < 12) {
        uint32_t v = 1u ^ ((uint32_t)masks[k] << (8 * (i - 8)));
        expect = v == 0 ? LP_EFORMAT : LP_EVERSION;
      } else if (i < 16) {
        expect = LP_EFORMAT; /* header size is not 32 */
      } else if (i < 24) {
        uint64_t v = paylen ^ ((uint64_t)masks[k] << (8 * (i - 16)));
        expect = v > paylen ? LP_ETRUNC : LP_EFORMAT;
      } else if (i < 28) {
        expect = LP_ECORRUPT;
      } else {
        expect = 0; /* the reserved flags are ignored by version 1 */
      }
      b.data[i] ^= masks[k];
      assert_int_equal(parse_copy(b.data, b.len), expect);
      if (expect == 0) {
        /* ... and the data read is the data written. */
        assert_int_equal(lp_file_parse(b.data, b.len, &p), 0);
        check_rich(&p);
        lp_profile_close(&p);
      }
      b.data[i] ^= masks[k];
    }
  }
  lp__free(b.data);
}

static void test_parse_version(void **state) {
  uint8_t copy[sizeof(golden)];
  (void)state;
  memcpy(copy, golden, sizeof(copy));
  copy[8] = 2;
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EVERSION);
  /* Too new wins even when the rest is damaged: a newer file may differ. */
  copy[20] = 0xFF;
  assert_int_equal(parse_copy(copy, 32), LP_EVERSION);
  memcpy(copy, golden, sizeof(copy));
  memset(copy + 8, 0xFF, 4);
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EVERSION);
  copy[8] = 0;
  copy[9] = 0;
  copy[10] = 0;
  copy[11] = 0;
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EFORMAT);
  memcpy(copy, golden, sizeof(copy));
  copy[12] = 64; /* header size */
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EFORMAT);
}

static void test_parse_trailing(void **state) {
  uint8_t copy[sizeof(golden) + 100];
  (void)state;
  memset(copy, 0, sizeof(copy));
  memcpy(copy, golden, sizeof(golden));
  assert_int_equal(parse_copy(copy, sizeof(golden)), 0);
  assert_int_equal(parse_copy(copy, sizeof(golden) + 1), LP_EFORMAT);
  assert_int_equal(parse_copy(copy, sizeof(copy)), LP_EFORMAT);
}

/* Appends the golden FUNC section (bytes 32..109) to b. */
static void bb_golden_func(bb_t *b) { bb_bytes(b, golden + 32, 78); }

static void test_parse_unknown_section(void **state) {
  bb_t b;
  size_t at;
  lp_profile_t p;
  (void)state;
  /* Unknown sections before and after, one empty: skipped. */
  bb_header(&b, 1);
  at = bb_open(&b, "ZZZZ");
  bb_bytes(&b, "abc", 3);
  bb_close(&b, at);
  bb_golden_func(&b);
  at = bb_open(&b, "ATTR");
  bb_close(&b, at);
  at = bb_open(&b, "func"); /* tags are case-sensitive */
  bb_u32(&b, 12345);
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(b.len, 32 + 15 + 78 + 12 + 16);
  assert_int_equal(lp_file_parse(b.d, b.len, &p), 0);
  assert_int_equal(p.table.nfuncs, 1);
  assert_string_equal(p.table.funcs[0]->name, "g");
  ASSERT_LINE(p.table.funcs[0], 2, 1, 2, 3, 4);
  lp_profile_close(&p);
  /* The builder reproduces the golden file exactly. */
  bb_header(&b, 1);
  bb_golden_func(&b);
  bb_finish(&b);
  assert_int_equal(b.len, sizeof(golden));
  assert_memory_equal(b.d, golden, sizeof(golden));
}

/* A FUNC section of "f"/"g" whose fields are given; lines as given. */
typedef struct {
  uint32_t kind, base, nlines, used;
  int nrec;
  int32_t rec[3];
  int extra; /* bytes of junk at the end of the section */
} func_spec_t;

static int parse_func_spec(const func_spec_t *s) {
  bb_t b;
  size_t at;
  int i;
  bb_header(&b, 1);
  at = bb_open(&b, "FUNC");
  bb_str(&b, "f");
  bb_str(&b, "g");
  bb_u32(&b, 1);
  bb_u32(&b, s->kind);
  bb_u32(&b, s->base);
  bb_u32(&b, s->nlines);
  bb_u32(&b, s->used);
  for (i = 0; i < s->nrec; i++)
    bb_line(&b, s->rec[i], 1, 1, 0, 1);
  for (i = 0; i < s->extra; i++)
    bb_bytes(&b, "\0", 1);
  bb_close(&b, at);
  bb_finish(&b);
  return parse_copy(b.d, b.len);
}

static void test_parse_bad_func(void **state) {
  /* Lines are 1..2 unless said otherwise. */
  static const struct {
    func_spec_t s;
    int expect;
  } cases[] = {
      {{2, 1, 2, 1, 1, {2}, 0}, 0},              /* the good one */
      {{2, 1, 2, 2, 2, {1, 2}, 0}, 0},           /* both lines */
      {{2, 1, 2, 0, 0, {0}, 0}, 0},              /* none used */
      {{2, 1, 2, 1, 1, {3}, 0}, LP_EFORMAT},     /* line above the range */
      {{2, 1, 2, 1, 1, {0}, 0}, LP_EFORMAT},     /* line below the range */
      {{2, 5, 2, 1, 1, {4}, 0}, LP_EFORMAT},     /* below base 5 */
      {{2, 1, 2, 1, 1, {-1}, 0}, LP_EFORMAT},    /* negative */
      {{2, 1, 2, 2, 2, {2, 2}, 0}, LP_EFORMAT},  /* duplicate */
      {{2, 1, 2, 2, 2, {1, 1}, 0}, LP_EFORMAT},  /* duplicate */
      {{2, 1, 2, 3, 3, {1, 2, 1}, 0}, LP_EFORMAT}, /* used > nlines */
      {{2, 1, 2, 2, 1, {2}, 0}, LP_EFORMAT},     /* fewer records than used */
      {{2, 1, 2, 1, 2, {1, 2}, 0}, LP_EFORMAT},  /* more records than used */
      {{2, 1, 2, 1, 1, {2}, 1}, LP_EFORMAT},     /* junk after the records */
      {{4, 1, 2, 1, 1, {2}, 0}, LP_EFORMAT},     /* kind */
      {{0xFFFFFFFFu, 1, 2, 1, 1, {2}, 0}, LP_EFORMAT},
      {{2, 0, 2, 1, 1, {1}, 0}, LP_EFORMAT},     /* base 0 */
      {{2, 0x80000000u, 2, 0, 0, {0}, 0}, LP_EFORMAT}, /* base < 0 */
      {{2, 1, 0, 0, 0, {0}, 0}, LP_EFORMAT},     /* no lines */
      {{2, 0x7FFFFFFFu, 2, 0, 0, {0}, 0}, LP_EFORMAT}, /* past INT32_MAX */
      {{2, 0x7FFFFFFFu, 1, 0, 0, {0}, 0}, 0},    /* exactly INT32_MAX */
      {{2, 1, 10000001, 0, 0, {0}, 0}, LP_EFORMAT}, /* over 10M lines */
      {{2, 1, 0xFFFFFFFFu, 0, 0, {0}, 0}, LP_EFORMAT},
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int got = parse_func_spec(&cases[i].s);
    if (got != cases[i].expect)
      fail_msg("case %zu: got %s, expected %s", i, lp_err_name(got),
               lp_err_name(cases[i].expect));
  }
}

static void test_parse_duplicate_after_zero_record(void **state) {
  bb_t b;
  size_t at;
  (void)state;
  /* Two records for line 2; the first has zero hits, time and await (the
   * writer never emits such a record, but the reader accepts one). The
   * second is still a duplicate. */
  bb_header(&b, 1);
  at = bb_open(&b, "FUNC");
  bb_str(&b, "f");
  bb_str(&b, "g");
  bb_u32(&b, 1);
  bb_u32(&b, 2);
  bb_u32(&b, 1);
  bb_u32(&b, 2);
  bb_u32(&b, 2);
  bb_line(&b, 2, 0, 0, 0, 5);
  bb_line(&b, 2, 1, 1, 1, 1);
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
}

static void test_parse_bad_structure(void **state) {
  bb_t b;
  size_t at;
  (void)state;
  /* A section header cut short: 11 bytes of payload. */
  bb_header(&b, 1);
  bb_bytes(&b, "FUNC\0\0\0\0\0\0\0", 11);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  /* A section longer than the payload. */
  bb_header(&b, 1);
  at = bb_open(&b, "ZZZZ");
  bb_bytes(&b, "abc", 3);
  bb_set64(&b, at, 4);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  bb_set64(&b, at, UINT64_MAX);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  /* A name longer than its section. */
  bb_header(&b, 1);
  at = bb_open(&b, "FUNC");
  bb_u32(&b, 100);
  bb_bytes(&b, "f", 1);
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  /* A name holding a NUL. */
  bb_header(&b, 1);
  at = bb_open(&b, "FUNC");
  bb_u32(&b, 3);
  bb_bytes(&b, "a\0b", 3);
  bb_str(&b, "g");
  bb_u32(&b, 1);
  bb_u32(&b, 0);
  bb_u32(&b, 1);
  bb_u32(&b, 1);
  bb_u32(&b, 0);
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  /* The same with a clean name parses: the case above is only the NUL. */
  b.d[32 + 12 + 5] = 'x';
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), 0);

  /* META: good, then with trailing bytes, then a count too large. */
  bb_header(&b, 1);
  at = bb_open(&b, "META");
  bb_u32(&b, 1);
  bb_str(&b, "k");
  bb_str(&b, "v");
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), 0);
  bb_header(&b, 1);
  at = bb_open(&b, "META");
  bb_u32(&b, 1);
  bb_str(&b, "k");
  bb_str(&b, "v");
  bb_bytes(&b, "!", 1);
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  bb_header(&b, 1);
  at = bb_open(&b, "META");
  bb_u32(&b, 2);
  bb_str(&b, "k");
  bb_str(&b, "v");
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
  /* An empty META section (no count). */
  bb_header(&b, 1);
  at = bb_open(&b, "META");
  bb_close(&b, at);
  bb_finish(&b);
  assert_int_equal(parse_copy(b.d, b.len), LP_EFORMAT);
}

/* Strings must be UTF-8 (docs/format.md): well-formed ones round-trip,
 * malformed ones make the file malformed, wherever they stand. */
static void test_parse_utf8(void **state) {
  static const struct {
    const char *s;
    int ok;
  } cases[] = {
      {"plain", 1},
      {"caf\xc3\xa9", 1},                 /* U+00E9 */
      {"\xe2\x82\xac", 1},               /* U+20AC */
      {"\xf0\x9d\x84\x9e", 1},           /* U+1D11E */
      {"\xf4\x8f\xbf\xbf", 1},           /* U+10FFFF */
      {"\xff", 0},                        /* never in UTF-8 */
      {"\xc3", 0},                        /* cut short */
      {"\xc3(", 0},                       /* bad continuation */
      {"\xc0\xaf", 0},                    /* overlong "/" */
      {"\xe0\x80\xaf", 0},                /* overlong, 3 bytes */
      {"\xed\xa0\x80", 0},                /* a surrogate */
      {"\xf4\x90\x80\x80", 0},            /* above U+10FFFF */
      {"\x80", 0},                        /* a lone continuation */
  };
  size_t i;
  int where;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    for (where = 0; where < 3; where++) {
      lp_table_t t;
      lp_meta_t m = {0};
      lp_buf_t b = {0};
      lp_profile_t p;
      lp_func_t *f;
      lp_table_init(&t);
      assert_int_equal(lp_table_add(&t, 1, where == 0 ? cases[i].s : "f.py",
                                    where == 1 ? cases[i].s : "fn", 1, 1, 1,
                                    LP_KIND_FUNCTION, &f),
                       0);
      assert_int_equal(lp_meta_add(&m, "k", where == 2 ? cases[i].s : "v"), 0);
      assert_int_equal(lp_file_encode(&t, &m, NULL, 0, &b), 0);
      assert_int_equal(lp_file_parse(b.data, b.len, &p), cases[i].ok ? 0 : LP_EFORMAT);
      lp_profile_close(&p);
      lp__free(b.data);
      lp_meta_close(&m);
      lp_table_close(&t);
    }
  }
}

static void test_parse_oom(void **state) {
  lp_buf_t b;
  lp_profile_t p;
  long n, total;
  (void)state;
  encode_rich(&b);
  lp_test_alloc_count();
  assert_int_equal(lp_file_parse(b.data, b.len, &p), 0);
  total = lp_test_alloc.allocs;
  lp_test_alloc_reset();
  lp_profile_close(&p);
  assert_true(total > 10);
  /* Any one allocation failing: LP_ENOMEM, and nothing leaks (ASan). */
  for (n = 0; n < total; n++) {
    lp_test_alloc_fail_at(n);
    assert_int_equal(lp_file_parse(b.data, b.len, &p), LP_ENOMEM);
    lp_test_alloc_reset();
    lp_profile_close(&p);
  }
  lp__free(b.data);
}

static void test_parse_empty_null(void **state) {
  lp_profile_t p;
  (void)state;
  /* Zero bytes at a NULL address are still empty input. (Runs last in
   * this file: a UBSan build stops the process here if the reader hands
   * NULL to memcmp.) */
  assert_int_equal(lp_file_parse(NULL, 0, &p), LP_ETRUNC);
  lp_profile_close(&p);
}

/* ---- files ---- */

static char tmpdir[4096];

static int setup_dir(void **state) {
  const char *base = getenv("TMPDIR");
  (void)state;
  snprintf(tmpdir, sizeof(tmpdir), "%s/lp_test_file.XXXXXX",
           base && *base ? base : "/tmp");
  return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes tmpdir and what the tests left in it (one level of files and
 * empty directories). */
static int teardown_dir(void **state) {
  DIR *d = opendir(tmpdir);
  struct dirent *de;
  char path[8192];
  (void)state;
  lp_test_alloc_reset();
  if (d != NULL) {
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
      if (unlink(path) != 0)
        rmdir(path);
    }
    closedir(d);
  }
  chmod(tmpdir, 0700);
  return rmdir(tmpdir) == 0 ? 0 : -1;
}

static void in_dir(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", tmpdir, name);
}

/* Number of entries in tmpdir; the first name in *first (if any). */
static int count_entries(char *first, size_t n) {
  DIR *d = opendir(tmpdir);
  struct dirent *de;
  int count = 0;
  assert_non_null(d);
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (count++ == 0 && first != NULL)
      snprintf(first, n, "%s", de->d_name);
  }
  closedir(d);
  return count;
}

static void write_raw(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, n, fp), n);
  assert_int_equal(fclose(fp), 0);
}

/* Asserts that path holds exactly n bytes equal to data. */
static void assert_file(const char *path, const void *data, size_t n) {
  uint8_t buf[1024];
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_true(n <= sizeof(buf));
  assert_int_equal(fread(buf, 1, sizeof(buf), fp), n);
  fclose(fp);
  assert_memory_equal(buf, data, n);
}

static void test_write_read(void **state) {
  char path[8192], name[256];
  lp_table_t t;
  lp_meta_t m;
  lp_profile_t p;
  lp_buf_t b;
  struct stat st;
  (void)state;
  in_dir(path, sizeof(path), "out.lprof");
  make_rich(&t, &m);
  assert_int_equal(lp_file_write(path, &t, &m), 0);
  /* Only the target is left: no temporary file. */
  assert_int_equal(count_entries(name, sizeof(name)), 1);
  assert_string_equal(name, "out.lprof");
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, RICH_SIZE);
  /* The file holds exactly the encoded bytes. */
  encode_rich(&b);
  assert_file(path, b.data, b.len);
  lp__free(b.data);
  assert_int_equal(lp_file_read(path, &p), 0);
  check_rich(&p);
  lp_profile_close(&p);

  /* Rewriting replaces the file. */
  assert_int_equal(lp_file_write(path, &(lp_table_t){0}, NULL), 0);
  assert_int_equal(count_entries(name, sizeof(name)), 1);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 32);
  assert_int_equal(lp_file_read(path, &p), 0);
  assert_int_equal(p.table.nfuncs, 0);
  assert_int_equal(p.meta.count, 0);
  lp_profile_close(&p);

  /* lp_file_write_buf with a ready buffer. */
  {
    lp_buf_t g = {(uint8_t *)golden, sizeof(golden), sizeof(golden), 0};
    assert_int_equal(lp_file_write_buf(path, &g), 0);
  }
  assert_file(path, golden, sizeof(golden));
  assert_int_equal(count_entries(NULL, 0), 1);
  lp_table_close(&t);
  lp_meta_close(&m);
}

static void test_write_fail_missing_dir(void **state) {
  char path[8192];
  lp_table_t t;
  lp_meta_t m;
  (void)state;
  make_rich(&t, &m);
  in_dir(path, sizeof(path), "no/such/dir/out.lprof");
  errno = 0;
  assert_int_equal(lp_file_write(path, &t, &m), LP_EIO);
  assert_int_equal(errno, ENOENT);
  assert_int_equal(count_entries(NULL, 0), 0);
  lp_table_close(&t);
  lp_meta_close(&m);
}

static void test_write_fail_keeps_target(void **state) {
  char path[8192], tmp[8300], name[256];
  lp_table_t t;
  lp_meta_t m;
  (void)state;
  make_rich(&t, &m);
  in_dir(path, sizeof(path), "out.lprof");
  write_raw(path, golden, sizeof(golden));

  /* The temporary file cannot be created (a directory sits at its name,
   * "<path>.tmp-<pid>-<tid>"): LP_EIO, the old target stays as it was. */
  snprintf(tmp, sizeof(tmp), "%s.tmp-%ld-%ld", path, (long)getpid(),
           (long)syscall(SYS_gettid));
  assert_int_equal(mkdir(tmp, 0700), 0);
  errno = 0;
  assert_int_equal(lp_file_write(path, &t, &m), LP_EIO);
  assert_int_equal(errno, EISDIR);
  assert_file(path, golden, sizeof(golden));
  assert_int_equal(rmdir(tmp), 0);
  assert_int_equal(count_entries(NULL, 0), 1);

  /* The rename cannot replace the target (a non-empty directory sits at
   * path): LP_EIO, the directory and its content intact, and the
   * temporary file removed. */
  in_dir(path, sizeof(path), "dir.lprof");
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(tmp, sizeof(tmp), "%s/inside", path);
  write_raw(tmp, "x", 1);
  errno = 0;
  assert_int_equal(lp_file_write(path, &t, &m), LP_EIO);
  assert_true(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST);
  assert_file(tmp, "x", 1);
  assert_int_equal(unlink(tmp), 0);
  assert_int_equal(rmdir(path), 0);
  assert_int_equal(count_entries(name, sizeof(name)), 1);
  assert_string_equal(name, "out.lprof");

  /* A read-only directory (only meaningful when not root). */
  if (geteuid() != 0) {
    in_dir(path, sizeof(path), "out.lprof");
    assert_int_equal(chmod(tmpdir, 0500), 0);
    errno = 0;
    assert_int_equal(lp_file_write(path, &t, &m), LP_EIO);
    assert_int_equal(errno, EACCES);
    assert_int_equal(chmod(tmpdir, 0700), 0);
    assert_file(path, golden, sizeof(golden));
    assert_int_equal(count_entries(NULL, 0), 1);
  }

  /* Encoding fails for lack of memory: nothing is written. */
  in_dir(path, sizeof(path), "out.lprof");
  lp_test_alloc_fail_from(0);
  assert_int_equal(lp_file_write(path, &t, &m), LP_ENOMEM);
  lp_test_alloc_reset();
  assert_file(path, golden, sizeof(golden));
  /* The temporary name cannot be allocated: LP_EIO with ENOMEM. */
  {
    lp_buf_t g = {(uint8_t *)golden, 32, 32, 0};
    lp_test_alloc_fail_from(0);
    errno = 0;
    assert_int_equal(lp_file_write_buf(path, &g), LP_EIO);
    assert_int_equal(errno, ENOMEM);
    lp_test_alloc_reset();
  }
  assert_file(path, golden, sizeof(golden));
  assert_int_equal(count_entries(NULL, 0), 1);
  lp_table_close(&t);
  lp_meta_close(&m);
}

/* A pid that no process has: a child that has exited and been reaped. */
static long dead_pid(void) {
  for (;;) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
      _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    if (kill(pid, 0) != 0 && errno == ESRCH)
      return (long)pid;
  }
}

/* Plants name in tmpdir with data, last modified age seconds ago. */
static void plant(const char *name, const void *data, size_t n, int age) {
  char path[8192];
  struct timespec times[2];
  in_dir(path, sizeof(path), name);
  write_raw(path, data, n);
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age;
  times[1] = times[0];
  assert_int_equal(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

static int planted(const char *name) {
  char path[8192];
  struct stat st;
  in_dir(path, sizeof(path), name);
  return lstat(path, &st) == 0;
}

/* A write removes the temporary files that killed writers left in its
 * directory, and only those: our name pattern with a dead writer's pid,
 * our magic, untouched for LP_FILE_STALE_SECONDS. */
static void test_write_sweeps_stale_temps(void **state) {
  enum { OLD = LP_FILE_STALE_SECONDS + 3600 };
  char path[8192], name[32][256], link_to[8192];
  long dead = dead_pid(), live = (long)getppid();
  lp_buf_t g = {(uint8_t *)golden, sizeof(golden), sizeof(golden), 0};
  int i;
  (void)state;
  in_dir(path, sizeof(path), "out.lprof");
#define NAME(i, ...) snprintf(name[i], sizeof(name[i]), __VA_ARGS__)
  NAME(0, "out.lprof.tmp-%ld-%ld", dead, dead);     /* stale: removed */
  NAME(1, "other.lprof.tmp-%ld-7", dead);           /* stale, other name */
  NAME(2, "out.lprof.tmp-%ld-8", dead);             /* not our magic */
  NAME(3, "out.lprof.tmp-%ld-9", live);             /* writer alive */
  NAME(4, "out.lprof.tmp-%ld-10", dead);            /* too fresh */
  NAME(5, "out.lprof.tmp-%ld-11x", dead);           /* not our pattern */
  NAME(6, "out.lprof.tmp-%ld", dead);               /* no tid */
  NAME(7, "out.lprof.tmp-%ld-12", dead);            /* a symbolic link */
  NAME(8, "out.lprof.tmp-%ld-13", dead);            /* a directory */
  NAME(9, "target-of-link");
#undef NAME
  plant(name[0], golden, sizeof(golden), OLD);
  plant(name[1], golden, 8, OLD); /* the magic alone: a killed write */
  plant(name[2], "not a profile at all", 20, OLD);
  plant(name[3], golden, sizeof(golden), OLD);
  plant(name[4], golden, sizeof(golden), 0);
  plant(name[5], golden, sizeof(golden), OLD);
  plant(name[6], golden, sizeof(golden), OLD);
  plant(name[9], golden, sizeof(golden), OLD);
  in_dir(link_to, sizeof(link_to), name[9]);
  in_dir(path, sizeof(path), name[7]);
  assert_int_equal(symlink(link_to, path), 0);
  in_dir(path, sizeof(path), name[8]);
  assert_int_equal(mkdir(path, 0700), 0);
  in_dir(path, sizeof(path), "out.lprof");
  assert_int_equal(lp_file_write_buf(path, &g), 0);
  assert_false(planted(name[0]));
  assert_false(planted(name[1]));
  for (i = 2; i <= 9; i++)
    if (!planted(name[i]))
      fail_msg("%s was removed", name[i]);
  assert_file(path, golden, sizeof(golden));
  in_dir(path, sizeof(path), name[8]);
  assert_int_equal(rmdir(path), 0);
}

static void test_read_errors(void **state) {
  char path[8192];
  lp_profile_t p;
  (void)state;
  errno = 0;
  assert_int_equal(lp_file_read(tmpdir, &p), LP_EIO);
  assert_int_equal(errno, EISDIR);
  lp_profile_close(&p);

  in_dir(path, sizeof(path), "missing.lprof");
  errno = 0;
  assert_int_equal(lp_file_read(path, &p), LP_EIO);
  assert_int_equal(errno, ENOENT);
  lp_profile_close(&p);

  /* Not a regular file. */
  errno = 0;
  assert_int_equal(lp_file_read("/dev/null", &p), LP_EIO);
  assert_int_equal(errno, EINVAL);
  lp_profile_close(&p);

  /* Over LP_FILE_MAX_SIZE (a sparse file; skipped where the file system
   * cannot hold one). */
  in_dir(path, sizeof(path), "huge.lprof");
  {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    if (ftruncate(fd, (off_t)LP_FILE_MAX_SIZE + 1) == 0) {
      close(fd);
      errno = 0;
      assert_int_equal(lp_file_read(path, &p), LP_EIO);
      assert_int_equal(errno, EFBIG);
      lp_profile_close(&p);
    } else {
      close(fd);
    }
    assert_int_equal(unlink(path), 0);
  }

  in_dir(path, sizeof(path), "empty.lprof");
  write_raw(path, "", 0);
  assert_int_equal(lp_file_read(path, &p), LP_ETRUNC);
  lp_profile_close(&p);

  write_raw(path, "hello, world\n", 13);
  assert_int_equal(lp_file_read(path, &p), LP_EBADMAGIC);
  lp_profile_close(&p);

  write_raw(path, golden, 50);
  assert_int_equal(lp_file_read(path, &p), LP_ETRUNC);
  lp_profile_close(&p);

  write_raw(path, golden, sizeof(golden));
  assert_int_equal(lp_file_read(path, &p), 0);
  assert_int_equal(p.table.nfuncs, 1);
  ASSERT_LINE(p.table.funcs[0], 2, 1, 2, 3, 4);
  lp_profile_close(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32_concurrent_first_use), /* must be first */
      cmocka_unit_test(test_crc32),
      cmocka_unit_test(test_encode_golden),
      cmocka_unit_test(test_parse_golden),
      cmocka_unit_test(test_encode_empty),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test_teardown(test_encode_oom, lp_test_teardown_alloc),
      cmocka_unit_test_teardown(test_meta_add_oom, lp_test_teardown_alloc),
      cmocka_unit_test(test_parse_short),
      cmocka_unit_test(test_parse_every_truncation),
      cmocka_unit_test(test_parse_flip_payload),
      cmocka_unit_test(test_parse_flip_header),
      cmocka_unit_test(test_parse_version),
      cmocka_unit_test(test_parse_trailing),
      cmocka_unit_test(test_parse_unknown_section),
      cmocka_unit_test(test_parse_bad_func),
      cmocka_unit_test(test_parse_duplicate_after_zero_record),
      cmocka_unit_test(test_parse_bad_structure),
      cmocka_unit_test(test_parse_utf8),
      cmocka_unit_test_teardown(test_parse_oom, lp_test_teardown_alloc),
      cmocka_unit_test_setup_teardown(test_write_read, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_fail_missing_dir, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_fail_keeps_target, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_write_sweeps_stale_temps,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_read_errors, setup_dir,
                                      teardown_dir),
      cmocka_unit_test(test_parse_empty_null), /* must be last */
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
