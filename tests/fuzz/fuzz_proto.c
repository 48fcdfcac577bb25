/* fuzz_proto.c - libFuzzer target for the live view's wire protocol
 * (csrc/core/lp_proto.c): the request decoder, the reply headers and the
 * listening addresses.
 *
 * 1. Requests. The input is a byte stream arriving on a connection. If it
 *    holds a NUL byte, what follows the last NUL gives the split points
 *    (each byte a read of 1..255 bytes, cycled) and what precedes it is the
 *    stream; otherwise the whole input is the stream, split by a small
 *    generator seeded from it. The stream is fed, as lp_worker.c's on_alloc
 *    and on_read do, into a 256-byte buffer (LP_PROTO_MAX_REQUEST): a read
 *    takes at most the room left; after each read lp_proto_parse is called
 *    until it needs more (0) or refuses (LP_EPROTO: the connection stops);
 *    a request taken is memmoved out. The same stream is also fed one byte
 *    at a time and in reads as large as the buffer allows: the requests
 *    served and the way the connection ends must not depend on the split.
 *    Every call to lp_proto_parse sees exactly len bytes at the end of a
 *    heap block (ASan catches a read past them) and is checked against a
 *    matcher written here:
 *      - the result is 0, LP_EPROTO or in [1, len], and <= 256;
 *      - n > 0 exactly when data starts with "LINEPROF/1 SNAPSHOT" or
 *        "LINEPROF/1 PING" and "\n" or "\r\n"; n is that line's length and
 *        *out the verb;
 *      - 0 only when len < 256 and no newline is in the data; and always 0
 *        (never an early LP_EPROTO) while the data is a proper prefix of a
 *        valid request;
 *      - prefix consistency: after n > 0, the prefixes of n - 1 bytes and
 *        of lengths between n and len give 0 and n; after LP_EPROTO, every
 *        longer buffer (the one-byte feed sees them all) stays LP_EPROTO;
 *      - the whole stream in one call, whatever its length: the same
 *        request, or LP_EPROTO from 256 bytes on.
 * 2. Addresses. The input up to its first NUL, as a string, and that
 *    string as the host of "[%s]:1" and "%s:1", go through lp_addr_parse.
 *    The result must match a parser written here (unix:PATH with 1 to
 *    LP_ADDR_PATH_MAX - 1 bytes; [HOST]:PORT; HOST:PORT with one colon;
 *    :PORT; PORT; decimal ports 0..65535; HOST empty or "localhost"
 *    meaning 127.0.0.1, else an address glibc's inet_pton reads, IPv6 with
 *    an optional %zone). When it succeeds, the address the worker would
 *    bind (uv_ip4_addr, else uv_ip6_addr, as lp_worker.c does) must be the
 *    one glibc reads from the host, with the same port; lp_addr_format
 *    then lp_addr_parse must give the same struct; lp_addr_format into a
 *    small buffer must truncate, NUL-terminate and return the full length
 *    without writing past cap; lp_addr_is_local
 *    must agree with 127.0.0.0/8, ::1 (with any zone) or unix.
 * 3. Replies. lp_proto_err with the string's first word as code and the
 *    rest as message, at caps 0 to 64, around the full length and at 128
 *    (the worker's): for cap >= 2 the result is the full line's longest
 *    prefix that fits, ending with '\n', length < cap, NUL-terminated; below
 *    2 it is 0; nothing is written past cap (a 16-byte guard filled with a
 *    pattern, then ASan's redzone). lp_proto_ok with the input's first 8
 *    bytes as n, at cap 48 (the documented minimum) and 1..47: exact text,
 *    or a NUL-terminated prefix within cap.
 * Any mismatch traps. LP_FUZZ_TRACE=1 prints each parse call and address;
 * LP_FUZZ_PROTO_KNOWN=1 tolerates finding 2 of docs/fuzzing.md (libuv
 * reads at most 39 bytes of an IPv6 host before a '%'), for long runs
 * while it is open. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lp_error.h"
#include "lp_proto.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "fuzz_proto: check failed: %s (line %d)\n", #cond,     \
              __LINE__);                                                     \
      __builtin_trap();                                                      \
    }                                                                        \
  } while (0)

#define MAXREQ LP_PROTO_MAX_REQUEST
#define GUARD 16

static int trace = -1;
static int known_v6_junk; /* LP_FUZZ_PROTO_KNOWN set: see ref_numeric */

/* ---- 1. requests ---- */

static const struct {
  const char *text;
  lp_request_t req;
} valid[] = {
    {"LINEPROF/1 SNAPSHOT\n", LP_REQ_SNAPSHOT},
    {"LINEPROF/1 SNAPSHOT\r\n", LP_REQ_SNAPSHOT},
    {"LINEPROF/1 PING\n", LP_REQ_PING},
    {"LINEPROF/1 PING\r\n", LP_REQ_PING},
};
#define NVALID (sizeof(valid) / sizeof(valid[0]))

/* The request data starts with: its length, and *req; 0 if none. */
static size_t ref_match(const char *d, size_t len, lp_request_t *req) {
  size_t i;
  for (i = 0; i < NVALID; i++) {
    size_t vl = strlen(valid[i].text);
    if (len >= vl && memcmp(d, valid[i].text, vl) == 0) {
      *req = valid[i].req;
      return vl;
    }
  }
  return 0;
}

/* 1 if data is a proper prefix of a valid request (more bytes may make
 * it one). */
static int ref_prefix(const char *d, size_t len) {
  size_t i;
  for (i = 0; i < NVALID; i++)
    if (len < strlen(valid[i].text) && memcmp(d, valid[i].text, len) == 0)
      return 1;
  return 0;
}

static char *arena; /* MAXREQ bytes on the heap; data is put at its end */

/* lp_proto_parse on a copy of d[0, len) ending where the heap block ends,
 * checked against the matcher. */
static int parse_checked(const char *d, size_t len, lp_request_t *out) {
  char *p;
  lp_request_t req = (lp_request_t)77, want_req = (lp_request_t)0;
  size_t want;
  int rc;
  CHECK(len <= MAXREQ);
  p = arena + (MAXREQ - len);
  memmove(p, d, len);
  rc = lp_proto_parse(p, len, &req);
  if (trace)
    fprintf(stderr, "  parse len=%zu -> %d\n", len, rc);
  CHECK(rc == 0 || rc == LP_EPROTO || (rc >= 1 && (size_t)rc <= len));
  CHECK(rc <= MAXREQ);
  want = ref_match(d, len, &want_req);
  if (want > 0) {
    CHECK((size_t)rc == want);
    CHECK(req == want_req);
  } else {
    CHECK(rc <= 0);
    CHECK(req == (lp_request_t)77); /* *out untouched */
    if (rc == 0)
      CHECK(len < MAXREQ && memchr(d, '\n', len) == NULL);
    if (ref_prefix(d, len))
      CHECK(rc == 0);
  }
  *out = req;
  return rc;
}

/* Prefixes of a buffer that gave n > 0: fewer than n bytes need more, n
 * bytes or more give n. */
static void check_prefixes(const char *d, size_t len, int n, uint32_t pick) {
  lp_request_t req, first;
  size_t mid;
  CHECK(parse_checked(d, len, &first) == n);
  CHECK(parse_checked(d, (size_t)n - 1, &req) == 0);
  CHECK(parse_checked(d, (size_t)n, &req) == n && req == first);
  mid = (size_t)n + pick % (len - (size_t)n + 1);
  CHECK(parse_checked(d, mid, &req) == n && req == first);
}

typedef struct {
  uint8_t served[1024]; /* verb of each request taken, in order */
  size_t nserved;
  size_t consumed; /* stream bytes taken by requests */
  int refused;     /* ended on LP_EPROTO */
} outcome_t;

typedef struct {
  const uint8_t *splits;
  size_t nsplits, next;
  uint32_t rng; /* when there are no split bytes */
  int mode;     /* 0: splits/rng, 1: one byte, 2: as much as fits */
} feeder_t;

static size_t next_read(feeder_t *f) {
  if (f->mode == 1)
    return 1;
  if (f->mode == 2)
    return MAXREQ;
  if (f->nsplits > 0) {
    size_t k = f->splits[f->next];
    f->next = (f->next + 1) % f->nsplits;
    return k;
  }
  f->rng ^= f->rng << 13;
  f->rng ^= f->rng >> 17;
  f->rng ^= f->rng << 5;
  return 1 + f->rng % 40;
}

/* Feeds stream to a connection as lp_worker.c does. */
static void run_connection(const uint8_t *stream, size_t slen, feeder_t *f,
                           outcome_t *o) {
  char in[MAXREQ];
  size_t inlen = 0, pos = 0;
  memset(o, 0, sizeof(*o));
  if (trace)
    fprintf(stderr, "connection, mode %d\n", f->mode);
  while (pos < slen) {
    /* on_alloc: the room left; on_read: nread bytes of it. */
    size_t room = sizeof(in) - inlen, k = next_read(f);
    CHECK(room > 0); /* a full buffer is always answered */
    if (k > room)
      k = room;
    if (k > slen - pos)
      k = slen - pos;
    memcpy(in + inlen, stream + pos, k);
    inlen += k;
    pos += k;
    if (trace)
      fprintf(stderr, " read %zu (buffer %zu)\n", k, inlen);
    /* client_process, again after each reply (on_written). */
    for (;;) {
      lp_request_t req;
      int n = parse_checked(in, inlen, &req);
      if (n == 0)
        break;
      if (n < 0) {
        o->refused = 1;
        return;
      }
      if (f->mode == 0)
        check_prefixes(in, inlen, n, (uint32_t)(pos * 2654435761u));
      if (o->nserved < sizeof(o->served))
        o->served[o->nserved] = (uint8_t)req;
      o->nserved++;
      o->consumed += (size_t)n;
      memmove(in, in + n, inlen - (size_t)n);
      inlen -= (size_t)n;
    }
  }
}

/* The whole stream in one call, however long (the worker never passes
 * more than 256 bytes, but the header's contract holds for any len). */
static void check_whole(const uint8_t *stream, size_t slen) {
  char *copy = malloc(slen ? slen : 1);
  lp_request_t req = (lp_request_t)77, want_req = (lp_request_t)0;
  size_t want;
  int rc;
  CHECK(copy != NULL);
  memcpy(copy, stream, slen);
  rc = lp_proto_parse(copy, slen, &req);
  want = ref_match(copy, slen, &want_req);
  if (want > 0)
    CHECK((size_t)rc == want && req == want_req);
  else if (slen >= MAXREQ)
    CHECK(rc == LP_EPROTO);
  else
    CHECK(rc == 0 || rc == LP_EPROTO);
  free(copy);
}

static void check_requests(const uint8_t *data, size_t size) {
  const uint8_t *nul = NULL, *p;
  size_t slen = size;
  feeder_t f;
  outcome_t o[3];
  int m;
  for (p = data; p < data + size; p++)
    if (*p == 0)
      nul = p;
  memset(&f, 0, sizeof(f));
  if (nul != NULL) {
    slen = (size_t)(nul - data);
    f.splits = nul + 1;
    f.nsplits = size - slen - 1;
  }
  {
    uint32_t h = 2166136261u;
    for (p = data; p < data + slen; p++)
      h = (h ^ *p) * 16777619u;
    f.rng = h | 1;
  }
  check_whole(data, slen);
  for (m = 0; m < 3; m++) {
    f.mode = m;
    f.next = 0;
    run_connection(data, slen, &f, &o[m]);
  }
  /* The split does not change what is served or how the connection ends. */
  for (m = 1; m < 3; m++) {
    CHECK(o[m].nserved == o[0].nserved);
    CHECK(o[m].consumed == o[0].consumed);
    CHECK(o[m].refused == o[0].refused);
    CHECK(memcmp(o[m].served, o[0].served,
                 o[0].nserved < sizeof(o[0].served) ? o[0].nserved
                                                    : sizeof(o[0].served)) ==
          0);
  }
}

/* ---- 2. addresses ---- */

/* Parses a decimal port, the whole of s. */
static int ref_port(const char *s, int *out) {
  long v = 0;
  if (*s == '\0')
    return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return 0;
    v = v * 10 + (*s - '0');
    if (v > 65535)
      return 0;
  }
  *out = (int)v;
  return 1;
}

/* 4 or 6 if host is a numeric IPv4 or IPv6 address (IPv6 may carry a
 * %zone); 0 if not. addr gets the address. */
static int ref_numeric(const char *host, unsigned char addr[16]) {
  char part[64];
  const char *pct;
  size_t n;
  if (inet_pton(AF_INET, host, addr) == 1)
    return 4;
  pct = strchr(host, '%');
  n = pct != NULL ? (size_t)(pct - host) : strlen(host);
  /* Finding 2 (docs/fuzzing.md, fixed): libuv's uv_ip6_addr reads at most
   * 39 bytes before a '%', so lp_addr_parse refuses longer ones.
   * LP_FUZZ_PROTO_KNOWN=1 models the old behaviour (truncation). */
  if (pct != NULL && n > 39) {
    if (!known_v6_junk)
      return 0;
    n = 39;
  }
  if (n >= sizeof(part))
    return 0;
  memcpy(part, host, n);
  part[n] = '\0';
  return inet_pton(AF_INET6, part, addr) == 1 ? 6 : 0;
}

/* The parser lp_proto.h describes, written again. Returns 1 and fills
 * *out (zeroed first) if text is an address. */
static int ref_addr(const char *text, lp_addr_t *out) {
  const char *colon, *host;
  size_t hlen;
  unsigned char a[16];
  memset(out, 0, sizeof(*out));
  if (strncmp(text, "unix:", 5) == 0) {
    size_t n = strlen(text + 5);
    if (n < 1 || n >= LP_ADDR_PATH_MAX)
      return 0;
    out->is_unix = 1;
    memcpy(out->path, text + 5, n + 1);
    return 1;
  }
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':')
      return 0;
    host = text + 1;
    hlen = (size_t)(close - host);
    colon = close + 1;
  } else {
    const char *c1 = strchr(text, ':');
    if (c1 != NULL && strchr(c1 + 1, ':') != NULL)
      return 0; /* more than one colon outside brackets */
    if (c1 != NULL) {
      host = text;
      hlen = (size_t)(c1 - text);
      colon = c1;
    } else {
      host = "";
      hlen = 0;
      colon = NULL;
    }
  }
  if (!ref_port(colon != NULL ? colon + 1 : text, &out->port))
    return 0;
  if (hlen == 0 || (hlen == 9 && memcmp(host, "localhost", 9) == 0)) {
    strcpy(out->host, "127.0.0.1");
    return 1;
  }
  if (hlen >= sizeof(out->host))
    return 0;
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  return ref_numeric(out->host, a) != 0;
}

static int ref_local(const lp_addr_t *a) {
  static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0, 1};
  unsigned char b[16];
  int fam;
  if (a->is_unix)
    return 1;
  fam = ref_numeric(a->host, b);
  CHECK(fam != 0);
  return fam == 4 ? b[0] == 127 : memcmp(b, loop6, 16) == 0;
}

static void check_addr(const char *text, size_t small_cap) {
  lp_addr_t a, want, back;
  char buf[LP_ADDR_PATH_MAX + 8], *small;
  int rc, ok, n;
  rc = lp_addr_parse(text, &a);
  ok = ref_addr(text, &want);
  if (trace)
    fprintf(stderr, "addr \"%s\" -> %d (want %s)\n", text, rc,
            ok ? "ok" : "LP_EADDR");
  CHECK(rc == 0 || rc == LP_EADDR);
  CHECK((rc == 0) == ok);
  if (rc != 0)
    return;
  CHECK(memcmp(&a, &want, sizeof(a)) == 0);
  if (a.is_unix) {
    CHECK(a.path[0] != '\0' && strlen(a.path) < sizeof(a.path));
  } else {
    unsigned char b[16];
    CHECK(a.port >= 0 && a.port <= 65535);
    CHECK(ref_numeric(a.host, b) != 0);
  }
  CHECK(lp_addr_is_local(&a) == ref_local(&a));
  if (!a.is_unix) {
    /* The address the worker binds (lp_worker.c: uv_ip4_addr, else
     * uv_ip6_addr) is the one written. */
    struct sockaddr_storage sa;
    unsigned char b[16];
    int fam = ref_numeric(a.host, b);
    memset(&sa, 0, sizeof(sa));
    if (uv_ip4_addr(a.host, a.port, (struct sockaddr_in *)&sa) == 0) {
      CHECK(fam == 4);
      CHECK(memcmp(&((struct sockaddr_in *)&sa)->sin_addr, b, 4) == 0);
      CHECK(ntohs(((struct sockaddr_in *)&sa)->sin_port) == a.port);
    } else {
      CHECK(uv_ip6_addr(a.host, a.port, (struct sockaddr_in6 *)&sa) == 0);
      CHECK(fam == 6);
      CHECK(memcmp(&((struct sockaddr_in6 *)&sa)->sin6_addr, b, 16) == 0);
      CHECK(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port) == a.port);
    }
  }

  /* Round trip. */
  n = lp_addr_format(&a, buf, sizeof(buf));
  CHECK(n > 0 && (size_t)n < sizeof(buf) && strlen(buf) == (size_t)n);
  if (trace)
    fprintf(stderr, "  formatted \"%s\"\n", buf);
  CHECK(lp_addr_parse(buf, &back) == 0);
  CHECK(memcmp(&a, &back, sizeof(a)) == 0);

  /* A small buffer: a prefix, NUL-terminated, the full length returned. */
  small = malloc(small_cap + GUARD);
  CHECK(small != NULL);
  memset(small, '#', small_cap + GUARD);
  CHECK(lp_addr_format(&a, small, small_cap) == n);
  if (small_cap > 0) {
    size_t k = (size_t)n < small_cap - 1 ? (size_t)n : small_cap - 1;
    CHECK(memcmp(small, buf, k) == 0 && small[k] == '\0');
  }
  for (n = 0; n < GUARD; n++)
    CHECK(small[small_cap + (size_t)n] == '#');
  free(small);
}

/* ---- 3. replies ---- */

static void check_err_cap(const char *code, const char *msg,
                          const char *full, size_t flen, size_t cap) {
  char *buf = malloc(cap + GUARD);
  size_t n, i;
  CHECK(buf != NULL);
  memset(buf, '#', cap + GUARD);
  n = lp_proto_err(buf, cap, code, msg);
  if (cap < 2) {
    CHECK(n == 0);
  } else {
    size_t k = flen < cap - 2 ? flen : cap - 2; /* bytes before '\n' */
    CHECK(n == k + 1);
    CHECK(n < cap);
    CHECK(memcmp(buf, full, k) == 0);
    CHECK(buf[k] == '\n' && buf[k + 1] == '\0');
  }
  for (i = 0; i < GUARD; i++)
    CHECK(buf[cap + i] == '#');
  free(buf);
}

static void check_err(const char *text) {
  char *code, *msg, *full, *sp;
  size_t tlen = strlen(text), flen, cap;
  code = malloc(tlen + 1);
  full = malloc(tlen + 32);
  CHECK(code != NULL && full != NULL);
  memcpy(code, text, tlen + 1);
  sp = strchr(code, ' ');
  msg = "";
  if (sp != NULL) {
    *sp = '\0';
    msg = sp + 1;
  }
  /* "LINEPROF/1 ERR <code> <message>" without snprintf. */
  flen = 0;
  memcpy(full, "LINEPROF/1 ERR ", 15);
  flen = 15;
  memcpy(full + flen, code, strlen(code));
  flen += strlen(code);
  full[flen++] = ' ';
  memcpy(full + flen, msg, strlen(msg));
  flen += strlen(msg);
  for (cap = 0; cap <= 64; cap++)
    check_err_cap(code, msg, full, flen, cap);
  for (cap = flen > 2 ? flen - 2 : 65; cap <= flen + 3; cap++)
    if (cap > 64)
      check_err_cap(code, msg, full, flen, cap);
  check_err_cap(code, msg, full, flen, 128);
  free(full);
  free(code);
}

static void check_ok(const uint8_t *data, size_t size) {
  uint64_t v = 0, t;
  char want[48], digits[24], buf[48 + GUARD];
  size_t i, nd = 0, wlen, cap;
  for (i = 0; i < 8 && i < size; i++)
    v = v << 8 | data[i];
  if (size > 0 && data[0] & 0x80)
    v >>= data[0] & 63; /* small numbers too */
  t = v;
  do {
    digits[nd++] = (char)('0' + t % 10);
    t /= 10;
  } while (t != 0);
  memcpy(want, "LINEPROF/1 OK ", 14);
  wlen = 14;
  while (nd > 0)
    want[wlen++] = digits[--nd];
  want[wlen++] = '\n';
  want[wlen] = '\0';
  /* 48 bytes (the documented minimum): the exact header; below it, a
   * NUL-terminated prefix within cap. */
  for (cap = 1; cap <= 48; cap++) {
    size_t n;
    memset(buf, '#', sizeof(buf));
    n = lp_proto_ok(buf, cap, v);
    CHECK(n < cap && buf[n] == '\0');
    CHECK(memcmp(buf, want, n) == 0);
    if (cap > wlen)
      CHECK(n == wlen);
    for (i = cap; i < sizeof(buf); i++)
      CHECK(buf[i] == '#');
  }
}

/* ---- driver ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text, *variant;
  size_t tlen;
  if (trace < 0) {
    trace = getenv("LP_FUZZ_TRACE") != NULL;
    known_v6_junk = getenv("LP_FUZZ_PROTO_KNOWN") != NULL;
  }
  if (arena == NULL)
    CHECK((arena = malloc(MAXREQ)) != NULL);

  check_requests(data, size);

  text = malloc(size + 1);
  CHECK(text != NULL);
  memcpy(text, data, size);
  text[size] = '\0';
  tlen = strlen(text);
  check_addr(text, size > 0 ? data[size - 1] % 40 : 0);
  variant = malloc(tlen + 8);
  CHECK(variant != NULL);
  snprintf(variant, tlen + 8, "[%s]:1", text);
  check_addr(variant, tlen % 23);
  snprintf(variant, tlen + 8, "%s:1", text);
  check_addr(variant, tlen % 17);
  free(variant);

  check_err(text);
  check_ok(data, size);
  free(text);
  return 0;
}
