/* test_proto.c - lp_proto: request parsing, reply formatting and listening
 * addresses. Pure functions over bytes: every expectation is exact. */
#include "lp_test.h"

#include <stdio.h>

#include "lp_proto.h"

#define PING "LINEPROF/1 PING\n"         /* 16 bytes */
#define SNAP "LINEPROF/1 SNAPSHOT\n"     /* 20 bytes */
#define PING_CRLF "LINEPROF/1 PING\r\n"  /* 17 bytes */
#define SNAP_CRLF "LINEPROF/1 SNAPSHOT\r\n" /* 21 bytes */

/* lp_proto_parse on exactly len bytes copied to the heap, so a read past
 * the end is caught by ASan. */
static int parse_n(const char *data, size_t len, lp_request_t *out) {
  char *copy = malloc(len ? len : 1);
  int rc;
  assert_non_null(copy);
  memcpy(copy, data, len);
  rc = lp_proto_parse(copy, len, out);
  free(copy);
  return rc;
}

static int parse(const char *s, lp_request_t *out) {
  return parse_n(s, strlen(s), out);
}

/* ---- requests ---- */

static void test_parse_valid(void **state) {
  lp_request_t req = 0;
  (void)state;
  assert_int_equal(sizeof(PING) - 1, 16);
  assert_int_equal(sizeof(SNAP) - 1, 20);
  assert_int_equal(parse(PING, &req), 16);
  assert_int_equal(req, LP_REQ_PING);
  req = 0;
  assert_int_equal(parse(SNAP, &req), 20);
  assert_int_equal(req, LP_REQ_SNAPSHOT);
  req = 0;
  assert_int_equal(parse(PING_CRLF, &req), 17);
  assert_int_equal(req, LP_REQ_PING);
  req = 0;
  assert_int_equal(parse(SNAP_CRLF, &req), 21);
  assert_int_equal(req, LP_REQ_SNAPSHOT);
}

/* Every proper prefix of a valid request needs more bytes; the whole
 * request is taken with its exact length. */
static void test_parse_prefixes(void **state) {
  static const char *const reqs[] = {PING, SNAP, PING_CRLF, SNAP_CRLF};
  size_t r, n;
  (void)state;
  for (r = 0; r < 4; r++) {
    size_t len = strlen(reqs[r]);
    for (n = 0; n < len; n++) {
      lp_request_t req = (lp_request_t)77;
      assert_int_equal(parse_n(reqs[r], n, &req), 0);
      assert_int_equal(req, 77); /* untouched */
    }
    {
      lp_request_t req = 0;
      assert_int_equal(parse_n(reqs[r], len, &req), (int)len);
    }
  }
}

static void test_parse_pipelined(void **state) {
  const char both[] = SNAP PING_CRLF SNAP;
  size_t len = sizeof(both) - 1, at = 0;
  lp_request_t req = 0;
  int n;
  (void)state;
  n = parse_n(both + at, len - at, &req);
  assert_int_equal(n, 20);
  assert_int_equal(req, LP_REQ_SNAPSHOT);
  at += (size_t)n;
  n = parse_n(both + at, len - at, &req);
  assert_int_equal(n, 17);
  assert_int_equal(req, LP_REQ_PING);
  at += (size_t)n;
  n = parse_n(both + at, len - at, &req);
  assert_int_equal(n, 20);
  assert_int_equal(req, LP_REQ_SNAPSHOT);
  at += (size_t)n;
  assert_int_equal(at, len);
  assert_int_equal(parse_n(both + at, 0, &req), 0);
  /* A request followed by half of the next: only the first is taken. */
  n = parse_n(SNAP "LINEPROF/1 PI", 20 + 13, &req);
  assert_int_equal(n, 20);
  assert_int_equal(req, LP_REQ_SNAPSHOT);
  /* A request followed by far more than LP_PROTO_MAX_REQUEST bytes. */
  {
    char big[1000];
    memset(big, 'x', sizeof(big));
    memcpy(big, PING, 16);
    assert_int_equal(parse_n(big, sizeof(big), &req), 16);
    assert_int_equal(req, LP_REQ_PING);
  }
}

static void test_parse_bad(void **state) {
  static const char *const bad[] = {
      "\r\n",
      "\n",
      "GET / HTTP/1.1\r\n",
      "hello\n",
      "LINEPROF/1 FROB\n",        /* wrong verb */
      "LINEPROF/1 SNAPSHOTS\n",   /* verb plus a letter */
      "LINEPROF/1 PIN\n",         /* verb minus a letter */
      "LINEPROF/1 \n",            /* no verb */
      "LINEPROF/1\n",             /* no space, no verb */
      "LINEPROF/1PING\n",         /* missing space */
      "LINEPROF/1  PING\n",       /* two spaces */
      "LINEPROF/1 PING \n",       /* trailing space */
      "LINEPROF/1\tPING\n",       /* tab */
      "lineprof/1 ping\n",        /* lowercase */
      "LINEPROF/1 ping\n",        /* lowercase verb */
      "LINEPROF/2 PING\n",        /* other version */
      "LINEPROF/1 PING\r\r\n",    /* two carriage returns */
      "LINEPROF/1 PING\rX\n",
      " LINEPROF/1 PING\n",
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    lp_request_t req = (lp_request_t)77;
    int rc = parse(bad[i], &req);
    if (rc != LP_EPROTO)
      fail_msg("\"%s\" gave %d, expected LP_EPROTO", bad[i], rc);
    assert_int_equal(req, 77);
  }
  /* Rejected early: a first byte that can never start a request. */
  {
    lp_request_t req;
    assert_int_equal(parse_n("G", 1, &req), LP_EPROTO);
    assert_int_equal(parse_n("LINEPROX", 8, &req), LP_EPROTO);
    assert_int_equal(parse_n("l", 1, &req), LP_EPROTO);
    assert_int_equal(parse_n("\r", 1, &req), LP_EPROTO);
  }
}

static void test_parse_embedded_nul(void **state) {
  lp_request_t req = (lp_request_t)77;
  (void)state;
  assert_int_equal(parse_n("LINEPROF/1 PI\0NG\n", 17, &req), LP_EPROTO);
  assert_int_equal(parse_n("LINEPROF/1 PING\0\n", 17, &req), LP_EPROTO);
  assert_int_equal(parse_n("LINEPROF/1\0PING\n", 16, &req), LP_EPROTO);
  assert_int_equal(parse_n("LINE\0ROF/1 PING\n", 16, &req), LP_EPROTO);
  assert_int_equal(req, 77);
  /* A NUL after a complete request belongs to the next one. */
  assert_int_equal(parse_n(PING "\0", 17, &req), 16);
  assert_int_equal(req, LP_REQ_PING);
}

/* No newline: more is needed below LP_PROTO_MAX_REQUEST bytes, LP_EPROTO
 * from LP_PROTO_MAX_REQUEST on. */
static void test_parse_too_long(void **state) {
  char buf[300];
  lp_request_t req;
  (void)state;
  assert_int_equal(LP_PROTO_MAX_REQUEST, 256);
  memset(buf, 'A', sizeof(buf));
  memcpy(buf, "LINEPROF/1 ", 11);
  assert_int_equal(parse_n(buf, 255, &req), 0);
  assert_int_equal(parse_n(buf, 256, &req), LP_EPROTO);
  assert_int_equal(parse_n(buf, 257, &req), LP_EPROTO);
  assert_int_equal(parse_n(buf, 300, &req), LP_EPROTO);
  /* A newline as the 256th byte is within the limit: a (bad) request is
   * judged, not refused for length. */
  buf[255] = '\n';
  assert_int_equal(parse_n(buf, 256, &req), LP_EPROTO);
  /* A newline beyond the limit is not looked for. */
  buf[255] = 'A';
  buf[280] = '\n';
  assert_int_equal(parse_n(buf, 300, &req), LP_EPROTO);
  /* Padding made only of a valid request's prefix: the same. */
  memset(buf, ' ', sizeof(buf));
  memcpy(buf, "LINEPROF/1", 10);
  assert_int_equal(parse_n(buf, 255, &req), 0);
  assert_int_equal(parse_n(buf, 256, &req), LP_EPROTO);
}

/* ---- replies ---- */

static void test_ok(void **state) {
  char buf[64];
  (void)state;
  assert_int_equal(lp_proto_ok(buf, sizeof(buf), 0), 16);
  assert_string_equal(buf, "LINEPROF/1 OK 0\n");
  assert_int_equal(lp_proto_ok(buf, sizeof(buf), 123456), 21);
  assert_string_equal(buf, "LINEPROF/1 OK 123456\n");
  /* The longest header fits in the documented minimum of 48 bytes. */
  {
    char small[48];
    size_t n = lp_proto_ok(small, sizeof(small), UINT64_MAX);
    assert_int_equal(n, 35);
    assert_string_equal(small, "LINEPROF/1 OK 18446744073709551615\n");
  }
}

/* lp_proto_ok below its documented 48 bytes: never writes past cap. */
static void test_ok_small_cap(void **state) {
  char buf[64];
  size_t cap;
  (void)state;
  for (cap = 1; cap <= 40; cap++) {
    size_t n;
    memset(buf, '#', sizeof(buf));
    n = lp_proto_ok(buf, cap, 123456);
    assert_true(n < cap);
    assert_int_equal(buf[n], '\0');
    assert_int_equal(buf[cap], '#'); /* nothing beyond cap */
    if (cap > 21) {
      assert_int_equal(n, 21);
      assert_string_equal(buf, "LINEPROF/1 OK 123456\n");
    }
  }
}

static void test_err(void **state) {
  char buf[128];
  size_t n;
  (void)state;
  n = lp_proto_err(buf, sizeof(buf), "busy", "too many clients");
  assert_string_equal(buf, "LINEPROF/1 ERR busy too many clients\n");
  assert_int_equal(n, strlen(buf));
  n = lp_proto_err(buf, sizeof(buf), "bad-request", "");
  assert_string_equal(buf, "LINEPROF/1 ERR bad-request \n");
  assert_int_equal(n, 28);
}

/* Truncation keeps the newline, never writes past cap, and the length
 * returned is the string's. */
static void test_err_truncation(void **state) {
  const char *full = "LINEPROF/1 ERR too-long the request is too long\n";
  size_t flen = strlen(full), cap;
  char buf[128];
  (void)state;
  for (cap = 2; cap <= flen + 4; cap++) {
    size_t n;
    memset(buf, '#', sizeof(buf));
    n = lp_proto_err(buf, cap, "too-long", "the request is too long");
    assert_true(n >= 1);
    assert_true(n < cap);
    assert_int_equal(n, strlen(buf));
    assert_int_equal(buf[n - 1], '\n');
    assert_int_equal(buf[cap], '#');
    if (cap > flen) {
      assert_int_equal(n, flen);
      assert_string_equal(buf, full);
    } else {
      /* The longest prefix that leaves room for "\n\0". */
      assert_int_equal(n, cap - 1);
      assert_memory_equal(buf, full, n - 1);
    }
  }
  /* Below two bytes there is no room for a newline: nothing is written
   * beyond cap and the length is 0. */
  memset(buf, '#', sizeof(buf));
  assert_int_equal(lp_proto_err(buf, 1, "x", "y"), 0);
  assert_int_equal(buf[1], '#');
  memset(buf, '#', sizeof(buf));
  assert_int_equal(lp_proto_err(buf, 0, "x", "y"), 0);
  assert_int_equal(buf[0], '#'); /* cap 0: nothing written */
}

/* ---- addresses ---- */

typedef struct {
  const char *text;
  int ok;
  int is_unix;
  const char *host; /* or path */
  int port;
} addr_case_t;

static void test_addr_parse_table(void **state) {
  /* Any path of 1 to LP_ADDR_PATH_MAX - 1 bytes parses; whether a socket
   * can be bound there (107 bytes at most) is lp_worker_init's to say, so
   * the message can name the real problem. */
  static char long_path[5 + 200 + 1], max_path[5 + LP_ADDR_PATH_MAX],
      over_path[5 + LP_ADDR_PATH_MAX + 1];
  addr_case_t cases[] = {
      {"127.0.0.1:8080", 1, 0, "127.0.0.1", 8080},
      {":0", 1, 0, "127.0.0.1", 0},
      {"8080", 1, 0, "127.0.0.1", 8080},
      {"0", 1, 0, "127.0.0.1", 0},
      {"65535", 1, 0, "127.0.0.1", 65535},
      {"localhost:1", 1, 0, "127.0.0.1", 1},
      {"[::1]:9", 1, 0, "::1", 9},
      {"[::]:0", 1, 0, "::", 0},
      {"[::1%lo]:9", 1, 0, "::1%lo", 9},
      /* libuv reads 39 bytes before a zone: longer is refused (fuzz_proto) */
      {"[0000:0000:0000:0000:0000:0000:0000:0001junk%lo]:80", 0, 0, NULL, 0},
      {"[0000:0000:0000:0000:0000:ffff:127.0.0.12%lo]:80", 0, 0, NULL, 0},
      {"[0000:0000:0000:0000:0000:ffff:127.0.0.12]:80", 1, 0,
       "0000:0000:0000:0000:0000:ffff:127.0.0.12", 80},
      {"0.0.0.0:1", 1, 0, "0.0.0.0", 1},
      {"10.0.0.1:65535", 1, 0, "10.0.0.1", 65535},
      {"127.0.0.2:080", 1, 0, "127.0.0.2", 80},
      {"unix:/tmp/x", 1, 1, "/tmp/x", 0},
      {"unix:rel.sock", 1, 1, "rel.sock", 0},
      {"unix:", 0, 0, NULL, 0},
      {"host:99999", 0, 0, NULL, 0},
      {"127.0.0.1:65536", 0, 0, NULL, 0},
      {"127.0.0.1:99999999999999999999", 0, 0, NULL, 0},
      {"65536", 0, 0, NULL, 0},
      {"example.com:80", 0, 0, NULL, 0},
      {"localhostx:80", 0, 0, NULL, 0},
      {"localhost", 0, 0, NULL, 0},
      {"::1:80", 0, 0, NULL, 0},
      {"::1", 0, 0, NULL, 0},
      {"[::1]", 0, 0, NULL, 0},
      {"[::1]:", 0, 0, NULL, 0},
      {"[::1:80", 0, 0, NULL, 0},
      {"1.2.3.4:", 0, 0, NULL, 0},
      {"1.2.3.4:-1", 0, 0, NULL, 0},
      {"1.2.3.4:+80", 0, 0, NULL, 0},
      {"1.2.3.4: 80", 0, 0, NULL, 0},
      {" 1.2.3.4:80", 0, 0, NULL, 0},
      {"1.2.3:80", 0, 0, NULL, 0},
      {"256.1.1.1:80", 0, 0, NULL, 0},
      {"", 0, 0, NULL, 0},
      {":", 0, 0, NULL, 0},
      {"80a", 0, 0, NULL, 0},
      {long_path, 1, 1, long_path + 5, 0},
      {max_path, 1, 1, max_path + 5, 0},
      {over_path, 0, 0, NULL, 0},
  };
  size_t i;
  (void)state;
  memcpy(long_path, "unix:", 5);
  memset(long_path + 5, 'p', 200);
  long_path[0 + 5 + 200] = '\0';
  memcpy(max_path, "unix:/", 6);
  memset(max_path + 6, 'q', LP_ADDR_PATH_MAX - 2);
  max_path[5 + LP_ADDR_PATH_MAX - 1] = '\0';
  memcpy(over_path, "unix:/", 6);
  memset(over_path + 6, 'r', LP_ADDR_PATH_MAX - 1);
  over_path[5 + LP_ADDR_PATH_MAX] = '\0';
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const addr_case_t *c = &cases[i];
    lp_addr_t a;
    int rc = lp_addr_parse(c->text, &a);
    if (!c->ok) {
      if (rc != LP_EADDR)
        fail_msg("\"%.40s\" gave %d, expected LP_EADDR", c->text, rc);
      continue;
    }
    if (rc != 0)
      fail_msg("\"%.40s\" gave %d, expected 0", c->text, rc);
    assert_int_equal(a.is_unix, c->is_unix);
    if (c->is_unix) {
      assert_string_equal(a.path, c->host);
    } else {
      assert_string_equal(a.host, c->host);
      assert_int_equal(a.port, c->port);
    }
  }
  {
    lp_addr_t a;
    assert_int_equal(lp_addr_parse(NULL, &a), LP_EADDR);
  }
}

static void test_addr_is_local(void **state) {
  static const struct {
    const char *text;
    int local;
  } cases[] = {
      {"127.0.0.1:1", 1},   {"127.1.2.3:1", 1}, {"127.255.255.254:1", 1},
      {"localhost:1", 1},   {":0", 1},          {"[::1]:1", 1},
      {"unix:/tmp/x", 1},   {"0.0.0.0:1", 0},   {"[::]:1", 0},
      {"10.0.0.1:1", 0},    {"128.0.0.1:1", 0}, {"126.0.0.1:1", 0},
      {"192.168.1.1:1", 0}, {"[::2]:1", 0},     {"[fe80::1]:1", 0},
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    lp_addr_t a;
    assert_int_equal(lp_addr_parse(cases[i].text, &a), 0);
    if (lp_addr_is_local(&a) != cases[i].local)
      fail_msg("lp_addr_is_local(\"%s\") != %d", cases[i].text,
               cases[i].local);
  }
  /* A hand-made address with a host no parser would accept: not local. */
  {
    lp_addr_t a;
    memset(&a, 0, sizeof(a));
    strcpy(a.host, "localhost");
    assert_int_equal(lp_addr_is_local(&a), 0);
  }
}

static void test_addr_format_round_trip(void **state) {
  static const struct {
    const char *in, *formatted;
  } cases[] = {
      {"127.0.0.1:8080", "127.0.0.1:8080"},
      {":0", "127.0.0.1:0"},
      {"8080", "127.0.0.1:8080"},
      {"localhost:1", "127.0.0.1:1"},
      {"[::1]:9", "[::1]:9"},
      {"[::]:65535", "[::]:65535"},
      {"0.0.0.0:1", "0.0.0.0:1"},
      {"unix:/tmp/x", "unix:/tmp/x"},
      {"10.1.2.3:080", "10.1.2.3:80"},
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    lp_addr_t a, b;
    char buf[160];
    int n;
    assert_int_equal(lp_addr_parse(cases[i].in, &a), 0);
    n = lp_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, cases[i].formatted);
    assert_int_equal(n, (int)strlen(cases[i].formatted));
    assert_int_equal(lp_addr_parse(buf, &b), 0);
    assert_int_equal(b.is_unix, a.is_unix);
    assert_string_equal(b.host, a.host);
    assert_int_equal(b.port, a.port);
    assert_string_equal(b.path, a.path);
  }
  /* A small buffer: truncated, NUL-terminated, and the length it needs. */
  {
    lp_addr_t a;
    char buf[8];
    memset(buf, '#', sizeof(buf));
    assert_int_equal(lp_addr_parse("127.0.0.1:8080", &a), 0);
    assert_int_equal(lp_addr_format(&a, buf, 6), 14);
    assert_string_equal(buf, "127.0");
    assert_int_equal(buf[6], '#');
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_valid),
      cmocka_unit_test(test_parse_prefixes),
      cmocka_unit_test(test_parse_pipelined),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_parse_embedded_nul),
      cmocka_unit_test(test_parse_too_long),
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_ok_small_cap),
      cmocka_unit_test(test_err),
      cmocka_unit_test(test_err_truncation),
      cmocka_unit_test(test_addr_parse_table),
      cmocka_unit_test(test_addr_is_local),
      cmocka_unit_test(test_addr_format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
