/* test_worker.c - lp_worker: the libuv thread that flushes snapshots to a
 * file and serves them over a socket. The tests talk to it as a client
 * would, with plain POSIX sockets, against an engine on the real clock.
 * Nothing waits a fixed time as an assertion: counters and files are
 * polled until a deadline. Every socket has a receive timeout, so a worker
 * that stops answering fails the test instead of hanging it. */
#include "lp_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lp_engine.h"
#include "lp_file.h"
#include "lp_proto.h"
#include "lp_worker.h"

#define KF ((uintptr_t)0x7f0000010000u)
#define KG ((uintptr_t)0x7f0000020000u)
#define KC ((uintptr_t)0x7f0000030000u)

#define PING "LINEPROF/1 PING\n"
#define SNAP "LINEPROF/1 SNAPSHOT\n"
#define OK0 "LINEPROF/1 OK 0\n"
#define BAD_REQUEST                                                          \
  "LINEPROF/1 ERR bad-request expected \"LINEPROF/1 SNAPSHOT\" or "          \
  "\"LINEPROF/1 PING\" and a newline\n"
#define TOO_LONG                                                             \
  "LINEPROF/1 ERR too-long expected \"LINEPROF/1 SNAPSHOT\" or "             \
  "\"LINEPROF/1 PING\" and a newline\n"

/* ---- a thread-safe allocator that can refuse the next allocation ---- */

static int alloc_fail_next; /* atomic: refuse the next allocating call */
static int alloc_failed;    /* atomic: allocating calls refused */

static void *worker_realloc(void *ptr, size_t size) {
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  if (__atomic_exchange_n(&alloc_fail_next, 0, __ATOMIC_ACQ_REL)) {
    __atomic_fetch_add(&alloc_failed, 1, __ATOMIC_ACQ_REL);
    return NULL;
  }
  return realloc(ptr, size);
}

/* ---- the engine the workers read, and scratch files ---- */

static lp_engine_t eng;
static lp_thread_t *th1;
static lp_func_t *ff, *fg, *fc;
static lp_task_t *task1;
static lp_meta_t meta;
static char tmpdir[128];

static uint64_t mono(void) { return lp_clock_monotonic(NULL); }

#define W(stmt)                                                              \
  do {                                                                       \
    uint64_t outer_ = lp_sync_write_begin(&eng.sync);                             \
    stmt;                                                                    \
    lp_sync_write_end(&eng.sync, outer_);                                    \
  } while (0)

/* f runs line 3 on thread 1, called c in task 1, which is parked at line
 * 2; g ran lines 6 and 7 once. */
static int group_setup(void **state) {
  const char *base = getenv("TMPDIR");
  uintptr_t u;
  lp_task_t *t;
  (void)state;
  /* Short enough for unix socket paths under it. */
  if (base == NULL || *base == '\0' || strlen(base) > 60)
    base = "/tmp";
  snprintf(tmpdir, sizeof(tmpdir), "%s/lpw.XXXXXX", base);
  if (mkdtemp(tmpdir) == NULL)
    return -1;
  if (lp_engine_init(&eng, lp_clock_monotonic, NULL) != 0 ||
      lp_table_add(&eng.table, KF, "w.py", "f", 1, 1, 10, LP_KIND_FUNCTION,
                   &ff) ||
      lp_table_add(&eng.table, KG, "w.py", "g", 5, 5, 10, LP_KIND_FUNCTION,
                   &fg) ||
      lp_table_add(&eng.table, KC, "w.py", "c", 1, 1, 10, LP_KIND_COROUTINE,
                   &fc) ||
      lp_engine_thread_new(&eng, 1, &th1))
    return -1;
  if (lp_engine_start(&eng, th1, ff, 0xf1, mono()) ||
      lp_engine_line(&eng, lp_engine_top(th1), 1, mono()) ||
      lp_engine_start(&eng, th1, fg, 0xa1, mono()) ||
      lp_engine_line(&eng, lp_engine_top(th1), 6, mono()) ||
      lp_engine_line(&eng, lp_engine_top(th1), 7, mono()))
    return -1;
  lp_engine_return(&eng, th1, mono());
  if (lp_engine_start(&eng, th1, fc, 0xc1, mono()) ||
      lp_tasks_new(&eng.tasks, "Task-1", "c", mono(), &t))
    return -1;
  task1 = t;
  lp_engine_set_task(&eng, th1, t, mono());
  if (lp_engine_line(&eng, lp_engine_top(th1), 2, mono()) ||
      lp_engine_yield(&eng, th1, 0x9999, mono(), &u) ||
      lp_engine_line(&eng, lp_engine_top(th1), 3, mono()))
    return -1;
  if (lp_meta_add(&meta, "job", "test_worker"))
    return -1;
  return 0;
}

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char path[512];
  if (d == NULL)
    return;
  while ((de = readdir(d)) != NULL) {
    struct stat st;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
      rm_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static int group_teardown(void **state) {
  (void)state;
  lp_engine_close(&eng);
  lp_meta_close(&meta);
  rm_tree(tmpdir);
  return 0;
}

static void tmp_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
}

/* ---- workers ---- */

static int worker_init_for(lp_engine_t *e, lp_worker_t **w,
                           const char *listen, const char *flush,
                           uint64_t flush_ms, char *err, size_t errlen) {
  lp_worker_opts_t o;
  memset(&o, 0, sizeof(o));
  o.listen = listen;
  o.flush_path = flush;
  o.flush_ms = flush_ms;
  o.meta = &meta;
  return lp_worker_init(w, e, &o, err, errlen);
}

static int worker_init(lp_worker_t **w, const char *listen, const char *flush,
                       uint64_t flush_ms, char *err, size_t errlen) {
  return worker_init_for(&eng, w, listen, flush, flush_ms, err, errlen);
}

/* A started worker of e listening at listen; fails the test otherwise. */
static lp_worker_t *worker_up_for(lp_engine_t *e, const char *listen) {
  lp_worker_t *w = NULL;
  char err[256];
  int rc = worker_init_for(e, &w, listen, NULL, 0, err, sizeof(err));
  if (rc != 0)
    fail_msg("lp_worker_init(%s): %s: %s", listen, lp_err_name(rc), err);
  assert_int_equal(lp_worker_start(w), 0);
  return w;
}

static lp_worker_t *worker_up(const char *listen) {
  return worker_up_for(&eng, listen);
}

static void worker_down(lp_worker_t *w) {
  assert_int_equal(lp_worker_close(w), 0);
}

/* ---- a client ---- */

static void set_timeouts(int fd, int ms) {
  struct timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connects to an address as lp_worker_address writes it; -1 on failure.
 * rcvbuf, if not 0, shrinks the receive buffer first. */
static int connect_rcvbuf(const char *text, int rcvbuf) {
  lp_addr_t a;
  int fd;
  if (lp_addr_parse(text, &a) != 0)
    return -1;
  if (a.is_unix) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, a.path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
      return -1;
    if (rcvbuf)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      close(fd);
      return -1;
    }
  } else if (strchr(a.host, ':') != NULL) {
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons((uint16_t)a.port);
    if (inet_pton(AF_INET6, a.host, &sa.sin6_addr) != 1 ||
        (fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
      return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      close(fd);
      return -1;
    }
  } else {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)a.port);
    /* A worker on 0.0.0.0 is reached through the loopback. */
    if (inet_pton(AF_INET,
                  strcmp(a.host, "0.0.0.0") == 0 ? "127.0.0.1" : a.host,
                  &sa.sin_addr) != 1 ||
        (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
      return -1;
    if (rcvbuf)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      close(fd);
      return -1;
    }
  }
  set_timeouts(fd, 5000);
  return fd;
}

static int connect_to(const char *text) {
  int fd = connect_rcvbuf(text, 0);
  if (fd < 0)
    fail_msg("connect(%s): %s", text, strerror(errno));
  return fd;
}

/* Sends all of s, without SIGPIPE if the worker has gone. */
static int send_n(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static void send_str(int fd, const char *s) {
  assert_int_equal(send_n(fd, s, strlen(s)), 0);
}

/* Reads one line (newline included) into buf; returns its length, 0 at
 * end of stream, -1 on error or timeout. */
static int read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = recv(fd, buf + n, 1, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      buf[n] = '\0';
      return r == 0 && n == 0 ? 0 : -1;
    }
    if (buf[n++] == '\n')
      break;
  }
  buf[n] = '\0';
  return (int)n;
}

static int read_exact(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* 1 if the worker closed the connection (end of stream or reset). */
static int closed_by_peer(int fd) {
  char c;
  ssize_t r;
  do
    r = recv(fd, &c, 1, 0);
  while (r < 0 && errno == EINTR);
  return r == 0 || (r < 0 && errno == ECONNRESET);
}

static void expect_line(int fd, const char *want) {
  char line[512];
  int n = read_line(fd, line, sizeof(line));
  if (n < 0 || strcmp(line, want) != 0)
    fail_msg("expected \"%s\", got \"%s\" (%d, %s)", want, line, n,
             n < 0 ? strerror(errno) : "");
}

static void ping(int fd) {
  send_str(fd, PING);
  expect_line(fd, OK0);
}

/* Reads a snapshot reply into *p (parsed; close it with lp_profile_close)
 * and returns the payload length. */
static uint64_t read_snapshot(int fd, lp_profile_t *p) {
  char line[128];
  unsigned long long n = 0;
  uint8_t *data;
  char tail = 0;
  int rc;
  assert_true(read_line(fd, line, sizeof(line)) > 0);
  if (sscanf(line, "LINEPROF/1 OK %llu%c", &n, &tail) != 2 || tail != '\n')
    fail_msg("bad header \"%s\"", line);
  assert_true(n >= LP_FILE_HEADER_SIZE);
  assert_non_null(data = malloc(n));
  assert_int_equal(read_exact(fd, data, n), 0);
  rc = lp_file_parse(data, n, p);
  free(data);
  if (rc != 0)
    fail_msg("lp_file_parse: %s", lp_err_name(rc));
  return n;
}

static const char *meta_get(const lp_meta_t *m, const char *key) {
  uint32_t i;
  for (i = 0; i < m->count; i++)
    if (strcmp(m->keys[i], key) == 0)
      return m->vals[i];
  return NULL;
}

/* What a snapshot of the shared engine must hold. */
static void check_profile(const lp_profile_t *p) {
  const lp_line_t *ln;
  const char *created;
  uint32_t i;
  assert_int_equal(p->has_now, 1);
  assert_int_equal(p->table.nfuncs, 3);
  assert_string_equal(p->table.funcs[0]->name, "f");
  assert_string_equal(p->table.funcs[1]->name, "g");
  assert_string_equal(p->table.funcs[2]->name, "c");
  assert_non_null(ln = lp_func_line(p->table.funcs[1], 6));
  assert_int_equal(ln->hits, 1);
  assert_non_null(ln = lp_func_line(p->table.funcs[1], 7));
  assert_int_equal(ln->hits, 1);
  assert_non_null(ln = lp_func_line(p->table.funcs[2], 2));
  assert_int_equal(ln->hits, 1);
  assert_true(ln->await > 0); /* parked, settled at the snapshot */
  assert_non_null(ln = lp_func_line(p->table.funcs[0], 3));
  assert_true(ln->hits >= 1);
  assert_true(ln->time > 0); /* running, settled at the snapshot */
  assert_true(p->ntasks >= 1);
  assert_int_equal(p->tasks[0].id, 1);
  assert_string_equal(p->tasks[0].name, "Task-1");
  assert_true(p->nnow >= 1);
  for (i = 0; i < p->nnow; i++)
    if (p->now[i].thread == 1)
      break;
  assert_true(i < p->nnow);
  assert_int_equal(p->now[i].func, 0);
  assert_true(p->now[i].lineno == 3 || p->now[i].lineno == 4);
  assert_true(p->now[i].elapsed > 0);
  assert_string_equal(meta_get(&p->meta, "job"), "test_worker");
  assert_non_null(created = meta_get(&p->meta, "created"));
  {
    /* "SECONDS.NANOSECONDS" on the real-time clock, about now. */
    unsigned long long sec = 0, nsec = 0;
    char dot = 0;
    uint64_t now = lp_clock_realtime() / 1000000000u;
    assert_int_equal(sscanf(created, "%llu%c%llu", &sec, &dot, &nsec), 3);
    assert_int_equal(dot, '.');
    assert_int_equal(strlen(strchr(created, '.') + 1), 9);
    assert_true(sec + 600 > now && sec <= now);
  }
}

static lp_worker_stats_t stats_of(lp_worker_t *w) {
  lp_worker_stats_t s;
  memset(&s, 0xff, sizeof(s));
  lp_worker_stats(w, &s);
  return s;
}

/* Polls cond every millisecond until it holds or seconds pass. */
#define WAIT_FOR(cond, seconds)                                              \
  do {                                                                       \
    uint64_t until_ = mono() + (uint64_t)(seconds) * 1000000000ull;          \
    while (!(cond) && mono() < until_)                                       \
      usleep(1000);                                                          \
  } while (0)

/* ---- init errors ---- */

static void test_init_errors(void **state) {
  lp_worker_t *w = (lp_worker_t *)&w;
  lp_worker_opts_t o;
  char err[256], path[256];
  (void)state;
  memset(&o, 0, sizeof(o));
  /* No job. */
  strcpy(err, "junk");
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)), LP_EINVAL);
  assert_null(w);
  /* A flush without a period. */
  tmp_path(path, sizeof(path), "never.lprof");
  o.flush_path = path;
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)), LP_EINVAL);
  assert_null(w);
  assert_int_equal(access(path, F_OK), -1);
  /* Bad addresses: the message names them. */
  o.flush_path = NULL;
  o.listen = "example.com:80";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)), LP_EADDR);
  assert_null(w);
  assert_non_null(strstr(err, "example.com:80"));
  o.listen = "unix:";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)), LP_EADDR);
  assert_non_null(strstr(err, "unix:"));
  o.listen = "127.0.0.1:65536";
  assert_int_equal(lp_worker_init(&w, &eng, &o, NULL, 0), LP_EADDR);
  /* Beyond loopback without allow_remote. */
  o.listen = "0.0.0.0:0";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)),
                   LP_EREMOTE);
  assert_null(w);
  assert_non_null(strstr(err, "0.0.0.0:0"));
  o.listen = "10.0.0.1:1";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)),
                   LP_EREMOTE);
  o.listen = "[::]:0";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)),
                   LP_EREMOTE);
  /* A tiny error buffer is truncated, not overrun. */
  memset(err, '#', sizeof(err));
  o.listen = "example.com:80";
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, 8), LP_EADDR);
  assert_int_equal(strlen(err), 7);
  assert_int_equal(err[8], '#');
}

static void test_allow_remote(void **state) {
  lp_worker_t *w = NULL;
  lp_worker_opts_t o;
  char err[256];
  const char *addr;
  int fd, port = 0;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.listen = "0.0.0.0:0";
  o.allow_remote = 1;
  assert_int_equal(lp_worker_init(&w, &eng, &o, err, sizeof(err)), 0);
  addr = lp_worker_address(w);
  assert_int_equal(strncmp(addr, "0.0.0.0:", 8), 0);
  assert_int_equal(sscanf(addr + 8, "%d", &port), 1);
  assert_true(port > 0 && port <= 65535);
  assert_int_equal(lp_worker_start(w), 0);
  fd = connect_to(addr);
  ping(fd);
  close(fd);
  worker_down(w);
}

/* A TCP port another socket listens at. */
static void test_busy_tcp_port(void **state) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  lp_worker_t *w = NULL;
  char err[256], listen_at[64];
  int lfd, cfd, afd;
  (void)state;
  assert_true((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 4), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ntohs(sa.sin_port));
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, err, sizeof(err)),
                   LP_EIO);
  assert_null(w);
  assert_non_null(strstr(err, listen_at));
  /* The other listener is unharmed. */
  cfd = connect_to(listen_at);
  assert_true((afd = accept(lfd, NULL, NULL)) >= 0);
  close(afd);
  close(cfd);
  close(lfd);
}

/* A regular file where the socket should go: refused, file untouched. */
static void test_unix_path_is_file(void **state) {
  char path[256], listen_at[300], err[256], buf[32];
  lp_worker_t *w = NULL;
  struct stat st;
  int fd;
  (void)state;
  tmp_path(path, sizeof(path), "precious");
  assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640)) >= 0);
  assert_int_equal(write(fd, "keep me\n", 8), 8);
  close(fd);
  snprintf(listen_at, sizeof(listen_at), "unix:%s", path);
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, err, sizeof(err)),
                   LP_EIO);
  assert_null(w);
  assert_non_null(strstr(err, path));
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0640);
  assert_true((fd = open(path, O_RDONLY)) >= 0);
  assert_int_equal(read(fd, buf, sizeof(buf)), 8);
  assert_memory_equal(buf, "keep me\n", 8);
  close(fd);
  unlink(path);
  /* A directory that does not exist. */
  snprintf(listen_at, sizeof(listen_at), "unix:%s/no/such/dir.sock", tmpdir);
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, err, sizeof(err)),
                   LP_EIO);
  assert_null(w);
  assert_non_null(strstr(err, "no/such/dir.sock"));
}

/* A socket file nothing listens at is replaced. */
static void test_unix_stale_socket(void **state) {
  struct sockaddr_un sa;
  char path[256], listen_at[300];
  lp_worker_t *w;
  struct stat st;
  int fd;
  (void)state;
  tmp_path(path, sizeof(path), "stale.sock");
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, path);
  assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(fd); /* the file stays: a crashed process's leftover */
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  snprintf(listen_at, sizeof(listen_at), "unix:%s", path);
  w = worker_up(listen_at);
  fd = connect_to(lp_worker_address(w));
  ping(fd);
  close(fd);
  worker_down(w);
  assert_int_equal(lstat(path, &st), -1);
  assert_int_equal(errno, ENOENT);
}

/* Another worker listens at the path: refused, and the other one keeps
 * its socket and its clients. */
static void test_unix_in_use(void **state) {
  char path[256], listen_at[300], err[256];
  lp_worker_t *a, *b = NULL;
  struct stat st;
  int fd;
  (void)state;
  tmp_path(path, sizeof(path), "inuse.sock");
  snprintf(listen_at, sizeof(listen_at), "unix:%s", path);
  a = worker_up(listen_at);
  fd = connect_to(listen_at);
  ping(fd);
  assert_int_equal(worker_init(&b, listen_at, NULL, 0, err, sizeof(err)),
                   LP_EIO);
  assert_null(b);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "listens"));
  ping(fd); /* the old connection */
  close(fd);
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  fd = connect_to(listen_at); /* and new ones */
  ping(fd);
  close(fd);
  worker_down(a);
  assert_int_equal(lstat(path, &st), -1);
}

/* ---- lifecycle ---- */

static void test_lifecycle(void **state) {
  char path[256], sock[256], listen_at[300];
  lp_worker_t *w;
  struct stat st;
  int fd;
  (void)state;
  tmp_path(path, sizeof(path), "life.lprof");
  tmp_path(sock, sizeof(sock), "life.sock");
  snprintf(listen_at, sizeof(listen_at), "unix:%s", sock);
  assert_int_equal(lp_worker_close(NULL), 0);
  /* Closed without being started; no live view: no address. */
  assert_int_equal(worker_init(&w, NULL, path, 3600000, NULL, 0), 0);
  assert_string_equal(lp_worker_address(w), "");
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(access(path, F_OK), -1);
  /* Closed without being started, listening: the socket file goes. */
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, NULL, 0), 0);
  assert_int_equal(lstat(sock, &st), 0);
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(lstat(sock, &st), -1);
  /* Stopped before being started: cannot start any more. */
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, NULL, 0), 0);
  lp_worker_stop(w);
  lp_worker_stop(w);
  assert_int_equal(lp_worker_start(w), LP_ESTATE);
  assert_int_equal(lp_worker_close(w), 0);
  /* The whole cycle, with stop twice and start refused when running. */
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, NULL, 0), 0);
  assert_int_equal(lp_worker_start(w), 0);
  assert_int_equal(lp_worker_start(w), LP_ESTATE);
  fd = connect_to(listen_at);
  ping(fd);
  lp_worker_stop(w);
  assert_true(closed_by_peer(fd)); /* stop closed the client */
  close(fd);
  lp_worker_stop(w);
  assert_int_equal(lp_worker_start(w), LP_ESTATE);
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(lstat(sock, &st), -1);
  assert_int_equal(errno, ENOENT);
}

/* A stopped worker's socket file is gone (libuv unlinks it when the
 * server handle closes), so a new worker may listen at the same path
 * before the old one is closed; closing the old one must leave the new
 * socket alone. */
static void test_close_spares_new_socket(void **state) {
  char sock[256], listen_at[300];
  lp_worker_t *a, *b;
  struct stat st;
  int fd, reachable;
  (void)state;
  tmp_path(sock, sizeof(sock), "reuse.sock");
  snprintf(listen_at, sizeof(listen_at), "unix:%s", sock);
  a = worker_up(listen_at);
  lp_worker_stop(a);
  assert_int_equal(lstat(sock, &st), -1); /* removed at stop */
  b = worker_up(listen_at);
  assert_int_equal(lp_worker_close(a), 0);
  reachable = lstat(sock, &st) == 0 && (fd = connect_rcvbuf(listen_at, 0)) >= 0;
  if (reachable) {
    ping(fd);
    close(fd);
  }
  worker_down(b);
  /* Closing the stopped worker leaves the new worker's socket alone
   * (libuv removed the old file at stop). */
  assert_true(reachable);
}

/* The socket file is the owner's only (0600), whatever the umask. */
static void test_unix_mode(void **state) {
  char sock[256], listen_at[300];
  lp_worker_t *w;
  struct stat st;
  mode_t old = umask(0);
  (void)state;
  tmp_path(sock, sizeof(sock), "mode.sock");
  snprintf(listen_at, sizeof(listen_at), "unix:%s", sock);
  w = worker_up(listen_at);
  umask(old);
  assert_string_equal(lp_worker_address(w), listen_at);
  assert_int_equal(lstat(sock, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  worker_down(w);
}

/* ":0" asks for a free port; the address tells which. */
static void test_tcp_port_zero(void **state) {
  lp_worker_t *w;
  lp_profile_t p;
  const char *addr;
  int port = 0, fd;
  (void)state;
  w = worker_up(":0");
  addr = lp_worker_address(w);
  assert_int_equal(strncmp(addr, "127.0.0.1:", 10), 0);
  assert_int_equal(sscanf(addr + 10, "%d", &port), 1);
  assert_true(port > 0 && port <= 65535);
  fd = connect_to(addr);
  ping(fd);
  send_str(fd, SNAP);
  read_snapshot(fd, &p);
  check_profile(&p);
  lp_profile_close(&p);
  close(fd);
  worker_down(w);
}

static void test_ipv6(void **state) {
  lp_worker_t *w = NULL;
  char err[256];
  int fd, rc;
  (void)state;
  rc = worker_init(&w, "[::1]:0", NULL, 0, err, sizeof(err));
  if (rc == LP_EIO)
    skip(); /* no IPv6 loopback here */
  assert_int_equal(rc, 0);
  assert_int_equal(strncmp(lp_worker_address(w), "[::1]:", 6), 0);
  assert_int_equal(lp_worker_start(w), 0);
  fd = connect_rcvbuf(lp_worker_address(w), 0);
  assert_true(fd >= 0);
  ping(fd);
  close(fd);
  worker_down(w);
}

/* ---- the live view ---- */

static void unix_addr(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "unix:%s/%s", tmpdir, name);
}

static void test_ping_snapshot(void **state) {
  char listen_at[300];
  lp_worker_t *w;
  lp_worker_stats_t st;
  lp_profile_t p;
  int fd;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "live.sock");
  w = worker_up(listen_at);
  st = stats_of(w);
  assert_int_equal(st.served, 0);
  assert_int_equal(st.rejected, 0);
  assert_int_equal(st.busy, 0);
  assert_int_equal(st.flushes, 0);
  fd = connect_to(listen_at);
  ping(fd);
  send_str(fd, SNAP);
  read_snapshot(fd, &p);
  check_profile(&p);
  lp_profile_close(&p);
  /* "\r\n" works too. */
  send_str(fd, "LINEPROF/1 PING\r\n");
  expect_line(fd, OK0);
  send_str(fd, "LINEPROF/1 SNAPSHOT\r\n");
  read_snapshot(fd, &p);
  lp_profile_close(&p);
  st = stats_of(w);
  assert_int_equal(st.served, 4);
  assert_int_equal(st.rejected, 0);
  close(fd);
  worker_down(w);
}

static void test_pipelined(void **state) {
  char listen_at[300], many[40 * 16 + 1];
  lp_worker_t *w;
  lp_profile_t p;
  int fd, i;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "pipe.sock");
  w = worker_up(listen_at);
  fd = connect_to(listen_at);
  /* Three requests in one write: three replies, in order. */
  send_str(fd, PING SNAP "LINEPROF/1 PING\r\n");
  expect_line(fd, OK0);
  read_snapshot(fd, &p);
  check_profile(&p);
  lp_profile_close(&p);
  expect_line(fd, OK0);
  /* Forty at once: more than the worker's 256-byte buffer. */
  many[0] = '\0';
  for (i = 0; i < 40; i++)
    strcat(many, PING);
  send_str(fd, many);
  for (i = 0; i < 40; i++)
    expect_line(fd, OK0);
  /* One request in pieces. */
  send_str(fd, "LINEPROF/1 SN");
  usleep(20000);
  send_str(fd, "APSH");
  usleep(20000);
  send_str(fd, "OT\n");
  read_snapshot(fd, &p);
  lp_profile_close(&p);
  assert_int_equal(stats_of(w).served, 3 + 40 + 1);
  close(fd);
  worker_down(w);
}

static void test_garbage(void **state) {
  char listen_at[300];
  lp_worker_t *w;
  int fd;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "garbage.sock");
  w = worker_up(listen_at);
  /* One error line, then the worker closes. */
  fd = connect_to(listen_at);
  send_str(fd, "hello\n");
  expect_line(fd, BAD_REQUEST);
  assert_true(closed_by_peer(fd));
  close(fd);
  /* Rejected at once, without waiting for a newline. */
  fd = connect_to(listen_at);
  send_str(fd, "GET / HTTP/1.1");
  expect_line(fd, BAD_REQUEST);
  assert_true(closed_by_peer(fd));
  close(fd);
  /* A good request, then a bad one: an answer, then the error. */
  fd = connect_to(listen_at);
  send_str(fd, PING "LINEPROF/1 FROB\n" PING);
  expect_line(fd, OK0);
  expect_line(fd, BAD_REQUEST);
  assert_true(closed_by_peer(fd));
  close(fd);
  /* Lowercase. */
  fd = connect_to(listen_at);
  send_str(fd, "lineprof/1 ping\n");
  expect_line(fd, BAD_REQUEST);
  close(fd);
  assert_int_equal(stats_of(w).rejected, 4);
  assert_int_equal(stats_of(w).served, 1);
  /* The worker still serves. */
  fd = connect_to(listen_at);
  ping(fd);
  close(fd);
  worker_down(w);
}

static void test_too_long(void **state) {
  char listen_at[300], buf[300];
  lp_worker_t *w;
  int fd;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "long.sock");
  w = worker_up(listen_at);
  /* 300 bytes that start like a request, without a newline. */
  memset(buf, 'A', sizeof(buf));
  memcpy(buf, "LINEPROF/1 ", 11);
  fd = connect_to(listen_at);
  assert_int_equal(send_n(fd, buf, sizeof(buf)), 0);
  expect_line(fd, TOO_LONG);
  assert_true(closed_by_peer(fd));
  close(fd);
  /* 300 bytes of garbage: a bad request, found before the limit. */
  memset(buf, 'A', sizeof(buf));
  fd = connect_to(listen_at);
  assert_int_equal(send_n(fd, buf, sizeof(buf)), 0);
  expect_line(fd, BAD_REQUEST);
  close(fd);
  fd = connect_to(listen_at);
  ping(fd);
  close(fd);
  worker_down(w);
}

/* A complete line of exactly LP_PROTO_MAX_REQUEST bytes (255 and its
 * newline) is within the limit (lp_proto.h: "at most LP_PROTO_MAX_REQUEST
 * bytes with its newline"): a bad request, not a too long one. */
static void test_full_line_not_too_long(void **state) {
  char listen_at[300], buf[256], line[512];
  lp_worker_t *w;
  lp_request_t req;
  int fd;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "full.sock");
  memset(buf, 'A', sizeof(buf));
  memcpy(buf, "LINEPROF/1 ", 11);
  buf[255] = '\n';
  /* lp_proto_parse judges it a malformed request like any other. */
  assert_int_equal(lp_proto_parse(buf, 256, &req), LP_EPROTO);
  w = worker_up(listen_at);
  fd = connect_to(listen_at);
  assert_int_equal(send_n(fd, buf, 255), 0);
  usleep(20000); /* most likely two reads: 255 bytes, then the newline */
  assert_int_equal(send_n(fd, buf + 255, 1), 0);
  assert_true(read_line(fd, line, sizeof(line)) > 0);
  close(fd);
  worker_down(w);
  assert_string_equal(line, BAD_REQUEST);
}

/* Every place taken by idle clients: a newcomer is served at once, and the
 * client silent longest makes room for it. */
static void test_evict_idle(void **state) {
  char listen_at[300];
  lp_worker_t *w;
  int fds[LP_WORKER_MAX_CLIENTS], extra, i;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "max.sock");
  w = worker_up(listen_at);
  for (i = 0; i < LP_WORKER_MAX_CLIENTS; i++) {
    fds[i] = connect_to(listen_at);
    ping(fds[i]); /* accepted and counted */
    usleep(2000); /* each silent a little less long than the one before */
  }
  ping(fds[0]); /* now fds[1] is the one silent longest */
  extra = connect_to(listen_at);
  ping(extra);
  assert_true(closed_by_peer(fds[1]));
  close(fds[1]);
  assert_int_equal(stats_of(w).evicted, 1);
  assert_int_equal(stats_of(w).rejected, 0);
  for (i = 0; i < LP_WORKER_MAX_CLIENTS; i++)
    if (i != 1) {
      ping(fds[i]);
      close(fds[i]);
    }
  ping(extra);
  close(extra);
  worker_down(w);
}

/* Every place taken by clients with half a request each (a trickle): the
 * newcomer gets in, and the one nearest its deadline (the first to start)
 * goes. */
static void test_evict_trickling(void **state) {
  char listen_at[300];
  lp_worker_t *w;
  lp_profile_t p;
  int fds[LP_WORKER_MAX_CLIENTS], extra, i;
  uint64_t t0;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "trickle.sock");
  w = worker_up(listen_at);
  for (i = 0; i < LP_WORKER_MAX_CLIENTS; i++) {
    fds[i] = connect_to(listen_at);
    send_str(fds[i], "LINEPROF/1 SNAP");
    usleep(2000);
  }
  usleep(50000); /* time for the worker to read every first half */
  t0 = mono();
  extra = connect_to(listen_at);
  send_str(extra, SNAP);
  read_snapshot(extra, &p);
  lp_profile_close(&p);
  assert_true(mono() - t0 < 1000000000ull);
  assert_true(closed_by_peer(fds[0]));
  assert_int_equal(stats_of(w).evicted, 1);
  /* The others still finish their requests. */
  for (i = 1; i < LP_WORKER_MAX_CLIENTS; i++) {
    send_str(fds[i], "SHOT\n");
    read_snapshot(fds[i], &p);
    lp_profile_close(&p);
    close(fds[i]);
  }
  close(fds[0]);
  close(extra);
  worker_down(w);
}

/* A request trickled a byte at a time, each byte in time: the deadline
 * runs from the first byte, so the client is told and dropped after
 * LP_WORKER_REQUEST_MS, not kept alive by the trickle. */
static void test_request_deadline(void **state) {
  char listen_at[300], line[256];
  const char *req = "LINEPROF/1 SNAPSHOT\n";
  lp_worker_t *w;
  uint64_t t0, waited;
  int fd, i, n = -1;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "deadline.sock");
  w = worker_up(listen_at);
  fd = connect_to(listen_at);
  set_timeouts(fd, 300);
  t0 = mono();
  for (i = 0; req[i] != '\n'; i++) {
    if (send_n(fd, req + i, 1) != 0)
      break;
    n = read_line(fd, line, sizeof(line));
    if (n > 0)
      break; /* the worker spoke */
  }
  waited = mono() - t0;
  if (n <= 0)
    fail_msg("no reply after %d bytes in %llu ms", i,
             (unsigned long long)(waited / 1000000));
  assert_string_equal(line, "LINEPROF/1 ERR timeout a request must be "
                            "complete within 5 s of its first byte\n");
  assert_true(waited >= (LP_WORKER_REQUEST_MS - 50) * 1000000ull);
  assert_true(waited <= (LP_WORKER_REQUEST_MS + 1500) * 1000000ull);
  set_timeouts(fd, 5000);
  assert_true(closed_by_peer(fd));
  close(fd);
  assert_int_equal(stats_of(w).expired, 1);
  worker_down(w);
}

/* The "created" meta of a snapshot reply: which snapshot it is. */
static void created_of(int fd, char *out, size_t cap) {
  lp_profile_t p;
  read_snapshot(fd, &p);
  snprintf(out, cap, "%s", meta_get(&p.meta, "created"));
  lp_profile_close(&p);
}

/* A flood of requests: every one is answered, one per
 * LP_WORKER_REQUEST_GAP_MS on a connection, and the program's engine is
 * copied at most once per LP_WORKER_SNAPSHOT_MS (told by the replies'
 * "created" and by the counter). */
static void test_snapshot_rate(void **state) {
  enum { N = 100 };
  char listen_at[300], created[64], last[64] = "";
  lp_worker_t *w;
  uint64_t t0, elapsed, bound;
  int fd, i, distinct = 0;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "rate.sock");
  w = worker_up(listen_at);
  fd = connect_to(listen_at);
  t0 = mono();
  for (i = 0; i < N; i++) {
    send_str(fd, SNAP);
    created_of(fd, created, sizeof(created));
    if (strcmp(created, last) != 0)
      distinct++;
    strcpy(last, created);
  }
  elapsed = mono() - t0;
  bound = elapsed / (LP_WORKER_SNAPSHOT_MS * 1000000ull) + 2;
  print_message("rate: %d requests in %llu ms, %d snapshots\n", N,
                (unsigned long long)(elapsed / 1000000), distinct);
  assert_true((uint64_t)distinct <= bound);
  assert_true(elapsed >= (N - 1) * LP_WORKER_REQUEST_GAP_MS * 1000000ull);
  assert_int_equal(stats_of(w).served, N);
  assert_true(stats_of(w).snapshots <= bound);
  /* After the interval, a fresh one. */
  usleep((LP_WORKER_SNAPSHOT_MS + 20) * 1000);
  send_str(fd, SNAP);
  created_of(fd, created, sizeof(created));
  assert_string_not_equal(created, last);
  close(fd);
  worker_down(w);
}

/* A client that goes away in the middle of a large reply. The test process
 * keeps SIGPIPE at its default action (death): the worker thread survives
 * because lp_worker_start blocks every signal in it, so its write fails
 * with EPIPE instead. */
static void vanish(const char *addr) {
  lp_profile_t p;
  char line[128];
  int fd, i;
  fd = connect_rcvbuf(addr, 4096);
  assert_true(fd >= 0);
  for (i = 0; i < 4; i++)
    send_str(fd, SNAP);
  assert_true(read_line(fd, line, sizeof(line)) > 0);
  assert_int_equal(strncmp(line, "LINEPROF/1 OK ", 14), 0);
  assert_true(recv(fd, line, 100, 0) > 0); /* a little of the payload */
  close(fd); /* with megabytes unread */
  /* The worker still serves, and in full. */
  fd = connect_to(addr);
  send_str(fd, SNAP);
  read_snapshot(fd, &p);
  assert_true(p.table.nfuncs >= 2000);
  lp_profile_close(&p);
  ping(fd);
  close(fd);
}

static void test_client_vanishes(void **state) {
  struct sigaction sa;
  sigset_t mask;
  lp_engine_t big;
  lp_thread_t *th;
  lp_worker_t *w;
  char name[32], listen_at[300];
  lp_func_t *f = NULL;
  int i, j;
  (void)state;
  assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
  assert_ptr_equal(sa.sa_handler, SIG_DFL);
  /* A big engine: 2000 functions of 100 used lines, megabytes encoded. */
  assert_int_equal(lp_engine_init(&big, lp_clock_monotonic, NULL), 0);
  for (i = 0; i < 2000; i++) {
    snprintf(name, sizeof(name), "big%d", i);
    assert_int_equal(lp_table_add(&big.table, 0, "big.py", name, 1, 1, 100,
                                  LP_KIND_FUNCTION, &f),
                     0);
    for (j = 0; j < 100; j++)
      f->lines[j].hits = (uint64_t)j + 1;
  }
  assert_int_equal(lp_engine_thread_new(&big, 1, &th), 0);
  assert_int_equal(lp_engine_start(&big, th, f, 0xf1, mono()), 0);
  assert_int_equal(lp_engine_line(&big, lp_engine_top(th), 5, mono()), 0);
  w = worker_up_for(&big, ":0");
  vanish(lp_worker_address(w));
  worker_down(w);
  unix_addr(listen_at, sizeof(listen_at), "vanish.sock");
  w = worker_up_for(&big, listen_at);
  vanish(listen_at);
  worker_down(w);
  lp_engine_close(&big);
  /* Still the default action, and not blocked on this thread. */
  assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
  assert_ptr_equal(sa.sa_handler, SIG_DFL);
  assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
  assert_int_equal(sigismember(&mask, SIGPIPE), 0);
}

/* The program stays inside one change: PING is still answered at once,
 * SNAPSHOT gets "busy" after LP_SNAPSHOT_DEADLINE_NS. */
static void test_snapshot_busy(void **state) {
  char listen_at[300], line[512];
  lp_worker_t *w;
  lp_profile_t p;
  uint64_t t0;
  uint64_t outer;
  int fd;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "busy.sock");
  w = worker_up(listen_at);
  fd = connect_to(listen_at);
  outer = lp_sync_write_begin(&eng.sync);
  ping(fd);
  t0 = mono();
  send_str(fd, SNAP);
  assert_true(read_line(fd, line, sizeof(line)) > 0);
  assert_true(mono() - t0 >= 1000000000ull);
  assert_int_equal(strncmp(line, "LINEPROF/1 ERR busy ", 20), 0);
  assert_true(closed_by_peer(fd));
  close(fd);
  lp_sync_write_end(&eng.sync, outer);
  assert_int_equal(stats_of(w).busy, 1);
  /* Out of the change: snapshots again. */
  fd = connect_to(listen_at);
  send_str(fd, SNAP);
  read_snapshot(fd, &p);
  check_profile(&p);
  lp_profile_close(&p);
  close(fd);
  worker_down(w);
}

/* Clients still connected, one halfway through a request, when the worker
 * is closed: everything is closed (uv_loop_close returned 0). */
static void test_close_with_clients(void **state) {
  char listen_at[300], sock[256];
  lp_worker_t *w;
  int a, b, c;
  struct stat st;
  (void)state;
  tmp_path(sock, sizeof(sock), "clients.sock");
  snprintf(listen_at, sizeof(listen_at), "unix:%s", sock);
  w = worker_up(listen_at);
  a = connect_to(listen_at);
  ping(a);
  b = connect_to(listen_at);
  send_str(b, "LINEPROF/1 SNAP");
  c = connect_to(listen_at);
  send_str(c, SNAP); /* the reply is not read */
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(lstat(sock, &st), -1);
  assert_true(closed_by_peer(a));
  assert_true(closed_by_peer(b));
  close(a);
  close(b);
  close(c);
}

/* ---- the periodic flush ---- */

typedef struct {
  int stop;
  uint64_t changes;
} writer_t;

/* Keeps f on thread 1 busy alternating lines 3 and 4. */
static void *writer_main(void *arg) {
  writer_t *wr = arg;
  int32_t l = 4;
  while (!__atomic_load_n(&wr->stop, __ATOMIC_RELAXED)) {
    uint64_t o = lp_sync_write_begin(&eng.sync);
    lp_engine_line(&eng, lp_engine_top(th1), l, mono());
    lp_sync_write_end(&eng.sync, o);
    l = l == 3 ? 4 : 3;
    wr->changes++;
    if (wr->changes % 64 == 0)
      usleep(100);
  }
  /* Leave it on line 3, as the other tests expect. */
  W(lp_engine_line(&eng, lp_engine_top(th1), 3, mono()));
  return NULL;
}

static int only_file_is(const char *dir, const char *name) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int others = 0, found = 0;
  if (d == NULL)
    return 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    if (strcmp(de->d_name, name) == 0)
      found = 1;
    else
      others++;
  }
  closedir(d);
  return found && others == 0;
}

static void test_flush(void **state) {
  char dir[256], path[300];
  lp_worker_t *w = NULL;
  lp_worker_stats_t st;
  lp_profile_t p;
  writer_t wr;
  pthread_t tid;
  uint64_t n;
  int rc;
  (void)state;
  tmp_path(dir, sizeof(dir), "flush");
  assert_int_equal(mkdir(dir, 0700), 0);
  snprintf(path, sizeof(path), "%s/p.lprof", dir);
  memset(&wr, 0, sizeof(wr));
  assert_int_equal(pthread_create(&tid, NULL, writer_main, &wr), 0);
  assert_int_equal(worker_init(&w, NULL, path, 20, NULL, 0), 0);
  assert_int_equal(lp_worker_start(w), 0);
  WAIT_FOR(stats_of(w).flushes >= 3, 10);
  st = stats_of(w);
  assert_true(st.flushes >= 3);
  assert_int_equal(st.flush_errors, 0);
  assert_int_equal(st.flush_errno, 0);
  assert_int_equal(st.served, 0);
  rc = lp_file_read(path, &p);
  if (rc != 0)
    fail_msg("lp_file_read: %s", lp_err_name(rc));
  assert_int_equal(p.has_now, 1);
  assert_int_equal(p.table.nfuncs, 3);
  assert_non_null(meta_get(&p.meta, "created"));
  assert_string_equal(meta_get(&p.meta, "job"), "test_worker");
  lp_profile_close(&p);
  /* The counters keep moving. */
  n = stats_of(w).flushes;
  WAIT_FOR(stats_of(w).flushes > n + 2, 10);
  assert_true(stats_of(w).flushes > n + 2);
  __atomic_store_n(&wr.stop, 1, __ATOMIC_RELAXED);
  assert_int_equal(pthread_join(tid, NULL), 0);
  lp_worker_stop(w);
  n = stats_of(w).flushes;
  assert_int_equal(lp_worker_close(w), 0);
  print_message("flush: %llu flushes while the writer made %llu changes\n",
                (unsigned long long)n, (unsigned long long)wr.changes);
  /* Written atomically: no temporary file is left behind. */
  assert_true(only_file_is(dir, "p.lprof"));
  rc = lp_file_read(path, &p);
  assert_int_equal(rc, 0);
  check_profile(&p);
  lp_profile_close(&p);
}

static void test_flush_unwritable(void **state) {
  char path[300];
  lp_worker_t *w = NULL;
  lp_worker_stats_t st;
  (void)state;
  /* A directory that does not exist. */
  tmp_path(path, sizeof(path), "missing/p.lprof");
  assert_int_equal(worker_init(&w, NULL, path, 20, NULL, 0), 0);
  assert_int_equal(lp_worker_start(w), 0);
  WAIT_FOR(stats_of(w).flush_errors >= 2, 10);
  st = stats_of(w);
  assert_true(st.flush_errors >= 2);
  assert_int_equal(st.flush_errno, ENOENT);
  assert_int_equal(st.flushes, 0);
  assert_int_equal(lp_worker_close(w), 0);
  /* A directory where the file should be. */
  tmp_path(path, sizeof(path), "adir");
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(worker_init(&w, NULL, path, 20, NULL, 0), 0);
  assert_int_equal(lp_worker_start(w), 0);
  WAIT_FOR(stats_of(w).flush_errors >= 1, 10);
  st = stats_of(w);
  assert_true(st.flush_errors >= 1);
  assert_int_equal(st.flush_errno, EISDIR);
  assert_int_equal(st.flushes, 0);
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(rmdir(path), 0); /* still an empty directory */
}

/* ---- the program closes or reuses the worker's descriptors ---- */

#define MAX_FDS 256

/* Marks in open[] the descriptors below MAX_FDS open now. */
static void open_fds(char open_[MAX_FDS]) {
  int fd;
  for (fd = 0; fd < MAX_FDS; fd++)
    open_[fd] = fcntl(fd, F_GETFD) != -1;
}

/* Closes what was opened since before[] was taken, except keep: what
 * os.closerange(3, N) does to the worker's descriptors. Stores them in
 * gone[] (in order) and returns how many. The raw system call: TSan takes
 * a close racing the worker's use of the descriptor for a data race, and
 * that race is what the program does and what these tests are about. */
static int close_new_fds(const char before[MAX_FDS], int keep, int *gone) {
  char now[MAX_FDS];
  int fd, n = 0;
  open_fds(now);
  for (fd = 3; fd < MAX_FDS; fd++)
    if (now[fd] && !before[fd] && fd != keep) {
      syscall(SYS_close, fd);
      gone[n++] = fd;
    }
  return n;
}

/* A worker with a flush every 5 ms and a client, whose descriptors the
 * "program" then closes; client and address out. */
static lp_worker_t *worker_to_lose(const char *name, char before[MAX_FDS],
                                   int *client, char *listen_at, size_t cap,
                                   char *flush, size_t fcap) {
  lp_worker_t *w = NULL;
  char err[256];
  unix_addr(listen_at, cap, name);
  snprintf(flush, fcap, "%s/%s.lprof", tmpdir, name);
  open_fds(before);
  if (worker_init(&w, listen_at, flush, 5, err, sizeof(err)) != 0)
    fail_msg("lp_worker_init: %s", err);
  assert_int_equal(lp_worker_start(w), 0);
  *client = connect_to(listen_at);
  ping(*client);
  WAIT_FOR(stats_of(w).flushes >= 2, 5);
  assert_true(stats_of(w).flushes >= 2);
  return w;
}

/* The worker's thread sees its descriptors closed: it stops without an
 * abort (libuv aborts on a closed epoll descriptor), says why, and the
 * owner closes it without touching them. */
static void test_lost_closed(void **state) {
  char before[MAX_FDS], listen_at[300], flush[300], sock[300];
  int gone[MAX_FDS], client, n;
  uint64_t flushes;
  lp_worker_stats_t st;
  lp_worker_t *w;
  lp_profile_t p;
  struct stat sst;
  (void)state;
  w = worker_to_lose("lost", before, &client, listen_at, sizeof(listen_at),
                     flush, sizeof(flush));
  n = close_new_fds(before, client, gone);
  assert_true(n >= 4); /* epoll, the wake-up pair, server, its client */
  WAIT_FOR(stats_of(w).lost, 5);
  st = stats_of(w);
  assert_int_equal(st.lost, 1);
  assert_non_null(strstr(st.lost_why, "the program closed descriptor "));
  flushes = st.flushes;
  usleep(50000);
  assert_int_equal(stats_of(w).flushes, flushes); /* it stopped */
  assert_true(closed_by_peer(client)); /* its end went with the "program" */
  close(client);
  snprintf(sock, sizeof(sock), "%s", listen_at + 5);
  assert_int_equal(lstat(sock, &sst), 0);
  assert_int_equal(lp_worker_close(w), 0);
  assert_int_equal(lstat(sock, &sst), -1); /* the socket file is removed */
  assert_int_equal(lp_file_read(flush, &p), 0); /* a whole file */
  lp_profile_close(&p);
}

/* Closed, then opened again as the program's own: an epoll instance, a
 * socket pair, regular files, in whatever numbers the kernel gives. The
 * worker must notice, and never write to, read from, add to or close any
 * of them; stop must not send its wake-up byte into them. */
static void test_lost_reused(void **state) {
  char before[MAX_FDS], listen_at[300], flush[300], path[300];
  int gone[MAX_FDS], mine[MAX_FDS], kind[MAX_FDS], client, n, i, m = 0;
  lp_worker_stats_t st;
  lp_worker_t *w;
  (void)state;
  w = worker_to_lose("reused", before, &client, listen_at, sizeof(listen_at),
                     flush, sizeof(flush));
  n = close_new_fds(before, client, gone);
  /* At once, so the worker is likely to find them reused, not closed; by
   * raw system calls, as close_new_fds closes them. */
  while (m < n) {
    int fds[2];
    switch (m % 3) {
    case 0:
      mine[m] = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
      kind[m++] = 0;
      break;
    case 1:
      assert_int_equal(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, fds),
                       0);
      mine[m] = fds[0];
      kind[m++] = 1;
      mine[m] = fds[1];
      kind[m++] = 1;
      break;
    default:
      snprintf(path, sizeof(path), "%s/reused.%d", tmpdir, m);
      mine[m] = (int)syscall(SYS_openat, AT_FDCWD, path,
                             O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      kind[m++] = 2;
    }
    assert_true(mine[m - 1] >= 0);
  }
  WAIT_FOR(stats_of(w).lost, 5);
  st = stats_of(w);
  assert_int_equal(st.lost, 1);
  print_message("lost: %s\n", st.lost_why);
  usleep(50000);
  lp_worker_stop(w);
  assert_int_equal(lp_worker_close(w), 0);
  for (i = 0; i < m; i++) {
    struct epoll_event ev;
    struct stat fst;
    char c;
    assert_int_not_equal(fcntl(mine[i], F_GETFD), -1); /* still open */
    if (kind[i] == 0)
      assert_int_equal(epoll_wait(mine[i], &ev, 1, 0), 0); /* nothing added */
    else if (kind[i] == 1)
      assert_int_equal(recv(mine[i], &c, 1, MSG_DONTWAIT), -1); /* no byte */
    else {
      assert_int_equal(fstat(mine[i], &fst), 0);
      assert_int_equal(fst.st_size, 0); /* nothing written */
    }
  }
  for (i = 0; i < m; i++)
    close(mine[i]);
  close(client);
}

/* ---- where a unix socket cannot go ---- */

static void expect_init_error(const char *listen_at, const char *want) {
  lp_worker_t *w = NULL;
  char err[512];
  assert_int_equal(worker_init(&w, listen_at, NULL, 0, err, sizeof(err)),
                   LP_EIO);
  assert_null(w);
  assert_string_equal(err, want);
}

static void test_unix_path_errors(void **state) {
  char path[600], listen_at[700], want[1600], dir[300];
  size_t n;
  int fd;
  (void)state;
  /* 107 bytes is the most sun_path holds with its NUL; 108 is refused. */
  snprintf(path, sizeof(path), "%s/", tmpdir);
  n = strlen(path);
  memset(path + n, 'x', 108 - n);
  path[108] = '\0';
  snprintf(listen_at, sizeof(listen_at), "unix:%s", path);
  snprintf(want, sizeof(want),
           "cannot listen at %s: path too long (at most 107 bytes)",
           listen_at);
  expect_init_error(listen_at, want);
  path[107] = '\0'; /* and 107 bytes work */
  snprintf(listen_at, sizeof(listen_at), "unix:%s", path);
  worker_down(worker_up(listen_at));
  /* A directory that does not exist. */
  snprintf(dir, sizeof(dir), "%s/no/such", tmpdir);
  snprintf(listen_at, sizeof(listen_at), "unix:%s/dir.sock", dir);
  snprintf(want, sizeof(want),
           "cannot listen at %s: no such directory '%s'", listen_at, dir);
  expect_init_error(listen_at, want);
  /* A file where a directory should be. */
  snprintf(dir, sizeof(dir), "%s/plain", tmpdir);
  assert_true((fd = open(dir, O_WRONLY | O_CREAT, 0600)) >= 0);
  close(fd);
  snprintf(listen_at, sizeof(listen_at), "unix:%s/x.sock", dir);
  snprintf(want, sizeof(want),
           "cannot listen at %s: '%s' is not a directory", listen_at, dir);
  expect_init_error(listen_at, want);
  /* The file itself, where the socket should go. */
  snprintf(listen_at, sizeof(listen_at), "unix:%s", dir);
  snprintf(want, sizeof(want),
           "cannot listen at %s: a file that is not a socket is there",
           listen_at);
  expect_init_error(listen_at, want);
  unlink(dir);
}

/* ---- allocation failure in the worker thread ---- */

/* The allocation of a new client's record fails: that client is lost, but
 * the worker must go on accepting others. */
static void test_accept_enomem(void **state) {
  char listen_at[300], line[256];
  lp_worker_t *w;
  int lost, fd, n;
  (void)state;
  unix_addr(listen_at, sizeof(listen_at), "nomem.sock");
  w = worker_up(listen_at);
  __atomic_store_n(&alloc_failed, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&alloc_fail_next, 1, __ATOMIC_RELEASE);
  lost = connect_to(listen_at);
  WAIT_FOR(__atomic_load_n(&alloc_failed, __ATOMIC_ACQUIRE) == 1, 5);
  assert_int_equal(__atomic_load_n(&alloc_failed, __ATOMIC_ACQUIRE), 1);
  fd = connect_to(listen_at);
  set_timeouts(fd, 2000);
  send_str(fd, PING);
  n = read_line(fd, line, sizeof(line));
  close(fd);
  close(lost);
  assert_int_equal(lp_worker_close(w), 0);
  /* The failed connection was accepted and closed: the server still
   * accepts. */
  assert_true(n > 0);
  assert_string_equal(line, OK0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_errors),
      cmocka_unit_test(test_allow_remote),
      cmocka_unit_test(test_busy_tcp_port),
      cmocka_unit_test(test_unix_path_is_file),
      cmocka_unit_test(test_unix_stale_socket),
      cmocka_unit_test(test_unix_in_use),
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_unix_mode),
      cmocka_unit_test(test_close_spares_new_socket),
      cmocka_unit_test(test_tcp_port_zero),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_ping_snapshot),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_full_line_not_too_long),
      cmocka_unit_test(test_evict_idle),
      cmocka_unit_test(test_evict_trickling),
      cmocka_unit_test(test_request_deadline),
      cmocka_unit_test(test_snapshot_rate),
      cmocka_unit_test(test_client_vanishes),
      cmocka_unit_test(test_snapshot_busy),
      cmocka_unit_test(test_close_with_clients),
      cmocka_unit_test(test_flush),
      cmocka_unit_test(test_flush_unwritable),
      cmocka_unit_test(test_accept_enomem),
      cmocka_unit_test(test_unix_path_errors),
      cmocka_unit_test(test_lost_closed),
      cmocka_unit_test(test_lost_reused),
  };
  /* Installed before any other core call, as lp_set_allocator requires. */
  lp_set_allocator(worker_realloc);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
