#include "lp_worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lp_alloc.h"
#include "lp_clock.h"
#include "lp_error.h"
#include "lp_proto.h"
#include "lp_snapshot.h"

/* The longest path a unix socket can bind (sun_path less its NUL). */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* After an error reply, a client has this long to read it and go. */
#define DRAIN_MS 1000

typedef struct client_s client_t;

/* A stream handle that is a TCP socket or a unix socket. */
typedef union {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} stream_u;

/* A descriptor the worker owns and the file it was when we got it. fd -1:
 * none. */
typedef struct {
  int fd;
  dev_t dev;
  ino_t ino;
} fd_id_t;

enum { FD_CLOSED = 1, FD_OTHER = 2 };

/* One encoded snapshot, shared by the replies that send it. */
typedef struct {
  unsigned refs;
  lp_buf_t buf;
} snap_t;

struct lp_worker_s {
  uv_loop_t loop;
  int loop_ready;
  fd_id_t wake[2];  /* a socket pair: the owner writes [1], the thread polls
                       [0]; [0] is also in the loop's epoll set, with no
                       events, as the mark that tells our epoll instance */
  stream_u server;
  fd_id_t server_id;
  int has_server, server_open;
  dev_t sock_dev;   /* the unix socket's file, as bound */
  ino_t sock_ino;
  stream_u spare;   /* accepts and closes when a client has no memory */
  int reject_busy;
  int started, stopped;
  int stopping;     /* atomic: set by lp_worker_stop, read by the thread */
  int lost;         /* atomic: set once, after lost_why is written */
  char lost_why[LP_WORKER_LOST_MAX];
  uv_thread_t thread;
  long tid;               /* the thread's kernel id (Linux), set by it */
  lp_engine_t *engine;
  char *flush_path;
  int has_flush;
  uint64_t flush_ms, next_flush; /* next_flush: ns, on now_ns()'s clock */
  lp_meta_t meta;
  uint64_t t0;
  lp_addr_t addr;
  char addr_text[160];
  client_t *clients;
  unsigned nclients;
  unsigned npending; /* clients in C_PENDING */
  int active;        /* libuv was called since the last uv_run */
  snap_t *snap;      /* the last snapshot (NULL if it failed) */
  int snap_err;      /* why the last one failed, else 0 */
  uint64_t snap_at;  /* ns: when it was taken; 0: never */
  lp_worker_t *next_lost;
  lp_worker_stats_t stats; /* written by the thread, read with atomics */
};

/* What a client is doing; each state has a deadline. */
typedef enum {
  C_IDLE,     /* no request under way: LP_WORKER_IDLE_MS */
  C_READING,  /* part of a request: LP_WORKER_REQUEST_MS from its start */
  C_PENDING,  /* a whole request, for the loop to answer */
  C_WRITING,  /* a reply on its way (reading paused): LP_WORKER_IDLE_MS */
  C_DRAINING  /* after an error reply: DRAIN_MS, then closed */
} client_state_t;

struct client_s {
  stream_u h;
  fd_id_t id;
  lp_worker_t *w;
  char in[LP_PROTO_MAX_REQUEST];
  size_t inlen;
  client_state_t state;
  lp_request_t req;  /* in C_PENDING */
  uint64_t since;    /* ns: when the state began */
  uint64_t deadline; /* ns: when the client is dropped in this state */
  uint64_t ready;    /* ns: its next request is answered no sooner */
  int closing;
  uv_shutdown_t shutdown;
  client_t *next, *prev;
};

typedef struct {
  uv_write_t req;
  client_t *c;
  snap_t *snap; /* the payload, or NULL */
  char head[128];
  int close_after;
} reply_t;

#define STAT_ADD(w, field) \
  __atomic_fetch_add(&(w)->stats.field, 1, __ATOMIC_RELAXED)

/* Lost workers: their memory stays reachable until the process ends. */
static lp_worker_t *graveyard;
static pthread_mutex_t graveyard_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list va;
  if (errbuf == NULL || errlen == 0)
    return;
  va_start(va, fmt);
  vsnprintf(errbuf, errlen, fmt, va);
  va_end(va);
}

#define MS(n) ((uint64_t)(n) * 1000000u)

static uint64_t now_ns(void) { return lp_clock_monotonic(NULL); }

/* ---- the descriptors we own ---- */

/* Records which file fd is. Returns 0, or -1 with errno set. */
static int fd_take(fd_id_t *id, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -1;
  id->fd = fd;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  return 0;
}

/* 0 if id's descriptor is still the file it was (or there is none);
 * FD_CLOSED or FD_OTHER. Sockets have an inode of their own each, so a
 * socket opened again at the same number does not pass. */
static int fd_check(const fd_id_t *id) {
  struct stat st;
  if (id->fd < 0)
    return 0;
  if (fstat(id->fd, &st) != 0)
    return errno == EBADF ? FD_CLOSED : FD_OTHER;
  return st.st_dev == id->dev && st.st_ino == id->ino ? 0 : FD_OTHER;
}

/* Every epoll instance has the same inode, so the loop's is told by its
 * content: only ours has wake[0] in its set. EPOLL_CTL_MOD of an entry
 * that is not there fails (ENOENT) and changes nothing. */
static int loop_check(lp_worker_t *w) {
  struct epoll_event ev;
  if (w->wake[0].fd < 0)
    return 0;
  memset(&ev, 0, sizeof(ev));
  ev.data.fd = -1; /* libuv skips events with fd -1 */
  if (epoll_ctl(uv_backend_fd(&w->loop), EPOLL_CTL_MOD, w->wake[0].fd, &ev)
      == 0)
    return 0;
  return errno == EBADF ? FD_CLOSED : FD_OTHER;
}

static int is_lost(const lp_worker_t *w) {
  return __atomic_load_n(&w->lost, __ATOMIC_ACQUIRE);
}

/* Marks the worker lost; returns -1. */
static int lose(lp_worker_t *w, int fd, const char *what, int how) {
  if (is_lost(w))
    return -1;
  snprintf(w->lost_why, sizeof(w->lost_why),
           how == FD_CLOSED ? "the program closed descriptor %d (%s)"
                            : "the program reused descriptor %d (%s) for "
                              "another file",
           fd, what);
  __atomic_store_n(&w->lost, 1, __ATOMIC_RELEASE);
  return -1;
}

/* Returns 0 if every descriptor the worker owns is still its own, else
 * marks it lost and returns -1. Sockets first: the epoll probe below
 * needs wake[0] to be ours. */
static int check(lp_worker_t *w) {
  client_t *c;
  int how, i;
  if (is_lost(w))
    return -1;
  for (i = 0; i < 2; i++)
    if ((how = fd_check(&w->wake[i])) != 0)
      return lose(w, w->wake[i].fd, "its wake-up socket", how);
  if (w->server_open && (how = fd_check(&w->server_id)) != 0)
    return lose(w, w->server_id.fd, "the live view's listening socket", how);
  for (c = w->clients; c != NULL; c = c->next)
    if ((how = fd_check(&c->id)) != 0)
      return lose(w, c->id.fd, "a live view client", how);
  if (w->loop_ready && (how = loop_check(w)) != 0)
    return lose(w, uv_backend_fd(&w->loop), "its event loop", how);
  return 0;
}

/* ---- snapshots ---- */

static void snap_unref(snap_t *s) {
  if (s != NULL && --s->refs == 0) {
    lp__free(s->buf.data);
    lp__free(s);
  }
}

/* Encodes a snapshot with the worker's meta and a fresh "created". */
static int encode_snapshot(lp_worker_t *w, lp_buf_t *buf) {
  lp_snapshot_t s;
  lp_meta_t meta = {0};
  char created[64];
  uint64_t now = lp_clock_realtime();
  uint32_t i;
  int err = lp_snapshot_take(w->engine, &s);
  STAT_ADD(w, snapshots);
  if (err == LP_EBUSY)
    STAT_ADD(w, busy);
  snprintf(created, sizeof(created), "%llu.%09llu",
           (unsigned long long)(now / 1000000000u),
           (unsigned long long)(now % 1000000000u));
  for (i = 0; err == 0 && i < w->meta.count; i++)
    err = lp_meta_add(&meta, w->meta.keys[i], w->meta.vals[i]);
  if (err == 0)
    err = lp_meta_add(&meta, "created", created);
  if (err == 0)
    err = lp_snapshot_encode(&s, &meta, w->t0, buf);
  lp_meta_close(&meta);
  lp_snapshot_close(&s);
  return err;
}

/* Replaces the last snapshot with a new one (or its error). Slow: the
 * thread checks its descriptors again before it calls libuv. */
static void refresh(lp_worker_t *w) {
  snap_t *s = lp__calloc(1, sizeof(*s));
  int err = s != NULL ? encode_snapshot(w, &s->buf) : LP_ENOMEM;
  snap_unref(w->snap);
  w->snap = NULL;
  if (s != NULL) {
    s->refs = 1;
    if (err == 0)
      w->snap = s;
    else
      snap_unref(s);
  }
  w->snap_err = err;
  w->snap_at = now_ns();
}

/* 1 if the last snapshot answers c's request: it is younger than
 * LP_WORKER_SNAPSHOT_MS, or it failed after the request came (a failure
 * is not kept for later requests). */
static int covered(const lp_worker_t *w, const client_t *c, uint64_t now) {
  return w->snap_at != 0 &&
         (c->since <= w->snap_at ||
          (w->snap != NULL && now - w->snap_at < MS(LP_WORKER_SNAPSHOT_MS)));
}

/* 1 if c's request may be answered now (LP_WORKER_REQUEST_GAP_MS). */
static int due(const client_t *c, uint64_t now) {
  return c->state == C_PENDING && c->ready <= now;
}

/* 1 if a request due now needs a snapshot newer than the last one. */
static int needs_snapshot(const lp_worker_t *w, uint64_t now) {
  const client_t *c;
  if (w->npending == 0)
    return 0;
  for (c = w->clients; c != NULL; c = c->next)
    if (due(c, now) && c->req == LP_REQ_SNAPSHOT && !covered(w, c, now))
      return 1;
  return 0;
}

/* ---- clients ---- */

static void client_next(client_t *c);
static int read_start(client_t *c);

/* Puts c in state s, dropped after ms. */
static void enter(client_t *c, client_state_t s, uint64_t ms) {
  uint64_t now = now_ns();
  if (c->state == C_PENDING)
    c->w->npending--;
  if (s == C_PENDING)
    c->w->npending++;
  c->state = s;
  c->since = now;
  c->deadline = now + MS(ms);
}

static void client_closed(uv_handle_t *h) { lp__free(h->data); }

static void client_close(client_t *c) {
  lp_worker_t *w = c->w;
  if (c->closing)
    return;
  enter(c, C_IDLE, 0); /* out of C_PENDING */
  c->closing = 1;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    w->clients = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  w->nclients--;
  w->active = 1;
  uv_close(&c->h.handle, client_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the drain deadline closes the client in any case */
}

/* After an error reply: stop writing and discard input until the client
 * closes (or DRAIN_MS pass), so the client reads the reply before the
 * connection goes; closing with unread input would reset it. */
static void client_drain(client_t *c) {
  enter(c, C_DRAINING, DRAIN_MS);
  c->inlen = 0;
  if (uv_shutdown(&c->shutdown, &c->h.stream, on_shutdown) != 0 ||
      read_start(c) != 0)
    client_close(c);
}

static void reply_free(reply_t *r) {
  snap_unref(r->snap);
  lp__free(r);
}

static void on_written(uv_write_t *req, int status) {
  reply_t *r = (reply_t *)req;
  client_t *c = r->c;
  int close_after = r->close_after;
  reply_free(r);
  c->w->active = 1;
  if (c->closing)
    return;
  if (status < 0) {
    client_close(c);
    return;
  }
  if (close_after) {
    client_drain(c);
    return;
  }
  client_next(c);
}

/* Queues head (and the snapshot, if any) to c. */
static void reply(client_t *c, reply_t *r, int close_after) {
  uv_buf_t bufs[2];
  unsigned n = 1;
  r->c = c;
  r->close_after = close_after;
  bufs[0] = uv_buf_init(r->head, (unsigned)strlen(r->head));
  if (r->snap != NULL)
    bufs[n++] = uv_buf_init((char *)r->snap->buf.data,
                            (unsigned)r->snap->buf.len);
  enter(c, C_WRITING, LP_WORKER_IDLE_MS);
  c->ready = c->since + MS(LP_WORKER_REQUEST_GAP_MS);
  c->w->active = 1;
  uv_read_stop(&c->h.stream);
  if (uv_write(&r->req, &c->h.stream, bufs, n, on_written) != 0) {
    reply_free(r);
    client_close(c);
  }
}

static void reply_error(client_t *c, const char *code, const char *msg) {
  reply_t *r = lp__calloc(1, sizeof(*r));
  if (r == NULL) {
    client_close(c);
    return;
  }
  lp_proto_err(r->head, sizeof(r->head), code, msg);
  reply(c, r, 1);
}

/* Takes the next request out of c's buffer: pending if it is whole, an
 * error reply if it cannot become one; else c reads on. */
static void client_next(client_t *c) {
  lp_request_t req;
  int n = lp_proto_parse(c->in, c->inlen, &req);
  if (n < 0) {
    int too_long = c->inlen >= LP_PROTO_MAX_REQUEST &&
                   memchr(c->in, '\n', c->inlen) == NULL &&
                   memcmp(c->in, LP_PROTO_MAGIC, sizeof(LP_PROTO_MAGIC) - 1) == 0;
    STAT_ADD(c->w, rejected);
    reply_error(c, too_long ? "too-long" : "bad-request",
                "expected \"" LP_PROTO_MAGIC " SNAPSHOT\" or \"" LP_PROTO_MAGIC
                " PING\" and a newline");
    return;
  }
  if (n > 0) {
    memmove(c->in, c->in + n, c->inlen - (size_t)n);
    c->inlen -= (size_t)n;
    c->req = req;
    enter(c, C_PENDING, LP_WORKER_REQUEST_MS);
    uv_read_stop(&c->h.stream);
    return;
  }
  /* The deadline of a request runs from its first byte: more bytes do not
   * move it. */
  if (c->inlen == 0)
    enter(c, C_IDLE, LP_WORKER_IDLE_MS);
  else if (c->state != C_READING)
    enter(c, C_READING, LP_WORKER_REQUEST_MS);
  if (read_start(c) != 0)
    client_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client_t *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof(c->in) - c->inlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client_t *c = s->data;
  (void)buf;
  c->w->active = 1;
  if (nread < 0) {
    client_close(c);
    return;
  }
  if (c->state == C_DRAINING) {
    c->inlen = 0;
    return;
  }
  if (nread == 0)
    return;
  c->inlen += (size_t)nread;
  client_next(c);
}

/* uv_read_start with our callbacks (client_next restarts reading). */
static int read_start(client_t *c) {
  int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
  return rc == UV_EALREADY ? 0 : rc;
}

/* Answers the requests due now that the last snapshot covers. */
static void answer(lp_worker_t *w) {
  client_t *c, *next;
  uint64_t now = now_ns();
  for (c = w->clients; c != NULL && w->npending > 0; c = next) {
    reply_t *r;
    next = c->next;
    if (!due(c, now) || (c->req == LP_REQ_SNAPSHOT && !covered(w, c, now)))
      continue;
    if (c->req == LP_REQ_SNAPSHOT && w->snap == NULL) {
      int err = w->snap_err;
      reply_error(c, err == LP_EBUSY ? "busy" : "unavailable",
                  err == LP_EBUSY ? "the profiled program stayed inside the "
                                    "profiler for too long; try again"
                                  : lp_strerror(err));
      continue;
    }
    if ((r = lp__calloc(1, sizeof(*r))) == NULL) {
      client_close(c);
      continue;
    }
    if (c->req == LP_REQ_SNAPSHOT) {
      r->snap = w->snap;
      r->snap->refs++;
    }
    STAT_ADD(w, served);
    lp_proto_ok(r->head, sizeof(r->head),
                r->snap != NULL ? r->snap->buf.len : 0);
    reply(c, r, 0);
  }
}

/* Drops the clients whose deadline has passed. A request still incomplete
 * gets a reply that says why. */
static void expire(lp_worker_t *w, uint64_t now) {
  client_t *c, *next;
  for (c = w->clients; c != NULL; c = next) {
    next = c->next;
    if (now < c->deadline)
      continue;
    if (c->state != C_DRAINING)
      STAT_ADD(w, expired);
    if (c->state == C_READING)
      reply_error(c, "timeout", "a request must be complete within 5 s of "
                                "its first byte");
    else
      client_close(c);
  }
}

/* The client to drop for a newcomer when every place is taken: one
 * draining, else the idle one silent longest, else the one nearest its
 * deadline. */
static client_t *victim(lp_worker_t *w) {
  client_t *c, *best = NULL;
  int best_rank = 0;
  uint64_t best_key = 0;
  for (c = w->clients; c != NULL; c = c->next) {
    int rank = c->state == C_DRAINING ? 0 : c->state == C_IDLE ? 1 : 2;
    uint64_t key = rank == 1 ? c->since : c->deadline;
    if (best == NULL || rank < best_rank ||
        (rank == best_rank && key < best_key)) {
      best = c;
      best_rank = rank;
      best_key = key;
    }
  }
  return best;
}

static void rejected(uv_handle_t *h) {
  ((lp_worker_t *)h->data)->reject_busy = 0;
}

/* No memory for a client: accept the connection into the worker's spare
 * handle and close it at once. A connection left pending would make libuv
 * stop watching the listening socket, and the server would go deaf. */
static void reject(lp_worker_t *w) {
  int rc;
  if (w->reject_busy)
    return;
  rc = w->addr.is_unix ? uv_pipe_init(&w->loop, &w->spare.pipe, 0)
                       : uv_tcp_init(&w->loop, &w->spare.tcp);
  if (rc != 0)
    return;
  w->reject_busy = 1;
  w->spare.handle.data = w;
  uv_accept(&w->server.stream, &w->spare.stream);
  uv_close(&w->spare.handle, rejected);
  STAT_ADD(w, rejected);
}

static void on_connection(uv_stream_t *server, int status) {
  lp_worker_t *w = server->data;
  client_t *c;
  uv_os_fd_t fd;
  int rc;
  w->active = 1;
  if (status < 0)
    return;
  if (w->nclients >= LP_WORKER_MAX_CLIENTS) {
    client_close(victim(w));
    STAT_ADD(w, evicted);
  }
  if ((c = lp__calloc(1, sizeof(*c))) == NULL) {
    reject(w);
    return;
  }
  c->w = w;
  c->id.fd = -1;
  rc = w->addr.is_unix ? uv_pipe_init(&w->loop, &c->h.pipe, 0)
                       : uv_tcp_init(&w->loop, &c->h.tcp);
  if (rc != 0) {
    lp__free(c);
    reject(w);
    return;
  }
  c->h.handle.data = c;
  c->next = w->clients;
  if (w->clients != NULL)
    w->clients->prev = c;
  w->clients = c;
  w->nclients++;
  if (uv_accept(server, &c->h.stream) != 0 ||
      uv_fileno(&c->h.handle, &fd) != 0 || fd_take(&c->id, fd) != 0) {
    client_close(c);
    return;
  }
  client_next(c); /* idle, reading */
}

/* ---- the periodic flush ---- */

/* A fresh snapshot to flush_path. Slow: calls no libuv function. */
static void flush(lp_worker_t *w, uint64_t now) {
  int err;
  w->next_flush = now + MS(w->flush_ms);
  refresh(w);
  err = w->snap_err;
  if (err == 0)
    err = lp_file_write_buf(w->flush_path, &w->snap->buf);
  if (err == 0) {
    STAT_ADD(w, flushes);
  } else {
    __atomic_store_n(&w->stats.flush_errno, err == LP_EIO ? errno : 0,
                     __ATOMIC_RELAXED);
    STAT_ADD(w, flush_errors);
  }
}

/* ---- the thread ---- */

static void close_all(lp_worker_t *w) {
  while (w->clients != NULL)
    client_close(w->clients);
  if (w->server_open) {
    w->server_open = 0;
    uv_close(&w->server.handle, NULL);
  }
}

/* How long the thread may sleep, in ms: until the next flush, client
 * deadline or request due, at most LP_WORKER_CHECK_MS; 0 if libuv has
 * work queued. */
static int sleep_ms(lp_worker_t *w, uint64_t now) {
  uint64_t until = now + MS(LP_WORKER_CHECK_MS);
  client_t *c;
  if (w->active ||
      (uv_loop_alive(&w->loop) && uv_backend_timeout(&w->loop) == 0))
    return 0;
  if (w->has_flush && w->next_flush < until)
    until = w->next_flush;
  for (c = w->clients; c != NULL; c = c->next) {
    if (c->deadline < until)
      until = c->deadline;
    if (c->state == C_PENDING && c->ready < until)
      until = c->ready;
  }
  return until <= now ? 0 : (int)((until - now + MS(1) - 1) / MS(1));
}

/* Sleeps in poll() on the loop's epoll descriptor and wake[0] (a closed
 * one wakes it too). Returns 1 if wake[0] is readable. */
static int block(lp_worker_t *w, uint64_t now) {
  struct pollfd p[2];
  int ms = sleep_ms(w, now);
  if (ms == 0)
    return 0;
  p[0].fd = uv_backend_fd(&w->loop);
  p[0].events = POLLIN;
  p[1].fd = w->wake[0].fd;
  p[1].events = POLLIN;
  p[0].revents = p[1].revents = 0;
  if (poll(p, 2, ms) <= 0)
    return 0;
  return (p[1].revents & POLLIN) != 0;
}

/* Stops: closes every handle and runs the loop until they are closed. */
static void shut(lp_worker_t *w) {
  close_all(w);
  while (uv_loop_alive(&w->loop)) {
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (check(w) != 0)
      return;
  }
}

/* The thread. Each turn checks the descriptors first; then the slow work
 * (a snapshot, a file write), which calls no libuv function and starts the
 * turn again; then the libuv part, which must follow a check closely: a
 * closed descriptor makes libuv abort, a reused one would make it act on
 * the program's file. */
static void run(void *arg) {
  lp_worker_t *w = arg;
#ifdef __linux__
  __atomic_store_n(&w->tid, (long)syscall(SYS_gettid), __ATOMIC_RELEASE);
#endif
  char drain[64];
  int woken = 0;
  w->next_flush = now_ns() + MS(w->flush_ms);
  while (check(w) == 0) {
    uint64_t now = now_ns();
    if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
      shut(w);
      return;
    }
    if (w->has_flush && now >= w->next_flush) {
      flush(w, now);
      continue;
    }
    if (needs_snapshot(w, now)) {
      refresh(w);
      continue;
    }
    while (woken && recv(w->wake[0].fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
      ;
    woken = 0;
    w->active = 0;
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (needs_snapshot(w, now))
      continue; /* the snapshot first */
    answer(w);
    now = now_ns();
    expire(w, now);
    woken = block(w, now);
  }
}

/* pthread_join returns when the thread has cleared its id, which the
 * kernel does before it drops the thread from the process: for a moment
 * the process still counts it (/proc/self/stat), and a fork() then is
 * taken for a multi-threaded one (Python 3.12+ warns). Waits, at most
 * 100 ms, until the thread is gone from /proc/self/task. */
static void wait_gone(long tid) {
#ifdef __linux__
  char path[64];
  struct stat st;
  int i;
  if (tid <= 0)
    return;
  snprintf(path, sizeof(path), "/proc/self/task/%ld", tid);
  for (i = 0; i < 1000 && stat(path, &st) == 0; i++) {
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
#else
  (void)tid;
#endif
}

/* ---- setting up ---- */

/* Writes "cannot listen at unix:PATH: WHY" to errbuf; returns LP_EIO. */
static int refuse(char *errbuf, size_t errlen, const char *path,
                  const char *fmt, ...) {
  char why[LP_ADDR_PATH_MAX + 64];
  va_list va;
  va_start(va, fmt);
  vsnprintf(why, sizeof(why), fmt, va);
  va_end(va);
  say(errbuf, errlen, "cannot listen at unix:%s: %s", path, why);
  return LP_EIO;
}

static const char *errno_text(int err) {
  return uv_strerror(uv_translate_sys_error(err));
}

/* Refuses what cannot become a unix socket at path, with a message. A
 * socket file that nothing listens at is stale: removed. */
static int unix_path_free(const char *path, char *errbuf, size_t errlen) {
  struct stat st;
  struct sockaddr_un sa;
  char dir[LP_ADDR_PATH_MAX];
  const char *slash;
  int fd, busy, rc;
  if (strlen(path) > SOCKET_PATH_MAX)
    return refuse(errbuf, errlen, path, "path too long (at most %u bytes)",
                  (unsigned)SOCKET_PATH_MAX);
  if (lstat(path, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      return refuse(errbuf, errlen, path, "%s", errno_text(errno));
    /* libuv's bind says "permission denied" for a missing directory: look
     * at it first. */
    if ((slash = strrchr(path, '/')) == NULL)
      return 0;
    snprintf(dir, sizeof(dir), "%.*s",
             slash == path ? 1 : (int)(slash - path), path);
    rc = stat(dir, &st);
    if (rc != 0 && errno == ENOENT)
      return refuse(errbuf, errlen, path, "no such directory '%s'", dir);
    if (rc != 0 && errno != ENOTDIR)
      return refuse(errbuf, errlen, path, "%s", errno_text(errno));
    if (rc != 0 || !S_ISDIR(st.st_mode))
      return refuse(errbuf, errlen, path, "'%s' is not a directory", dir);
    return 0; /* bind says what else is wrong */
  }
  if (!S_ISSOCK(st.st_mode))
    return refuse(errbuf, errlen, path, "a file that is not a socket is there");
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
    return refuse(errbuf, errlen, path, "%s", errno_text(errno));
  busy = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  if (busy)
    return refuse(errbuf, errlen, path, "another process listens there");
  if (unlink(path) != 0)
    return refuse(errbuf, errlen, path, "cannot remove the stale socket: %s",
                  errno_text(errno));
  return 0;
}

static int listen_at(lp_worker_t *w, char *errbuf, size_t errlen) {
  uv_os_fd_t fd;
  int rc, err;
  if (w->addr.is_unix) {
    struct stat st;
    if ((err = unix_path_free(w->addr.path, errbuf, errlen)) != 0)
      return err;
    if ((rc = uv_pipe_init(&w->loop, &w->server.pipe, 0)) != 0)
      goto uv_fail;
    w->has_server = 1;
    if ((rc = uv_pipe_bind(&w->server.pipe, w->addr.path)) != 0)
      goto uv_fail;
    /* Owner only, before anyone can connect (listen comes after). */
    if (chmod(w->addr.path, 0600) != 0 || lstat(w->addr.path, &st) != 0) {
      rc = uv_translate_sys_error(errno);
      goto uv_fail;
    }
    w->sock_dev = st.st_dev;
    w->sock_ino = st.st_ino;
  } else {
    struct sockaddr_storage sa;
    int len = (int)sizeof(sa);
    if ((rc = uv_ip4_addr(w->addr.host, w->addr.port,
                          (struct sockaddr_in *)&sa)) != 0 &&
        (rc = uv_ip6_addr(w->addr.host, w->addr.port,
                          (struct sockaddr_in6 *)&sa)) != 0)
      goto uv_fail;
    if ((rc = uv_tcp_init(&w->loop, &w->server.tcp)) != 0)
      goto uv_fail;
    w->has_server = 1;
    if ((rc = uv_tcp_bind(&w->server.tcp, (struct sockaddr *)&sa, 0)) != 0)
      goto uv_fail;
    if ((rc = uv_tcp_getsockname(&w->server.tcp, (struct sockaddr *)&sa,
                                 &len)) != 0)
      goto uv_fail;
    w->addr.port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  }
  w->server.handle.data = w;
  if ((rc = uv_listen(&w->server.stream, 128, on_connection)) != 0)
    goto uv_fail;
  if ((rc = uv_fileno(&w->server.handle, &fd)) != 0)
    goto uv_fail;
  if (fd_take(&w->server_id, fd) != 0) {
    rc = uv_translate_sys_error(errno);
    goto uv_fail;
  }
  w->server_open = 1;
  lp_addr_format(&w->addr, w->addr_text, sizeof(w->addr_text));
  return 0;
uv_fail:
  lp_addr_format(&w->addr, w->addr_text, sizeof(w->addr_text));
  say(errbuf, errlen, "cannot listen at %s: %s", w->addr_text,
      uv_strerror(rc));
  w->addr_text[0] = '\0';
  if (w->has_server) {
    w->server_open = 0;
    uv_close(&w->server.handle, NULL);
  }
  return LP_EIO;
}

/* The wake-up pair, and wake[0] in the loop's epoll set with no events
 * (see loop_check). Returns 0 or LP_ENOMEM. */
static int wake_init(lp_worker_t *w) {
  struct epoll_event ev;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                 fds) != 0)
    return LP_ENOMEM;
  if (fd_take(&w->wake[0], fds[0]) != 0 || fd_take(&w->wake[1], fds[1]) != 0)
    goto fail;
  memset(&ev, 0, sizeof(ev));
  ev.data.fd = -1;
  if (epoll_ctl(uv_backend_fd(&w->loop), EPOLL_CTL_ADD, fds[0], &ev) != 0)
    goto fail;
  return 0;
fail:
  close(fds[0]);
  close(fds[1]);
  w->wake[0].fd = w->wake[1].fd = -1;
  return LP_ENOMEM;
}

/* On the owner thread, with no thread running: closes what is left and the
 * loop. Returns uv_loop_close's result; 0 if the worker is lost (nothing
 * closed). */
static int teardown(lp_worker_t *w) {
  int rc = 0, i;
  if (check(w) != 0)
    return 0;
  if (w->loop_ready) {
    close_all(w);
    while (uv_loop_alive(&w->loop)) {
      uv_run(&w->loop, UV_RUN_NOWAIT);
      if (check(w) != 0)
        return 0;
    }
    rc = uv_loop_close(&w->loop);
    w->loop_ready = 0;
  }
  for (i = 0; i < 2; i++)
    if (w->wake[i].fd >= 0) {
      close(w->wake[i].fd);
      w->wake[i].fd = -1;
    }
  return rc;
}

/* libuv removes a unix socket's file when it closes the server handle
 * (before the close, so a new worker at the same path is not hit). */
static void worker_free(lp_worker_t *w) {
  lp_meta_close(&w->meta);
  lp__free(w->flush_path);
  snap_unref(w->snap);
  lp__free(w);
}

/* A lost worker: its socket file goes if it is still the one we bound; the
 * rest is kept, reachable, and never touched again. */
static void bury(lp_worker_t *w) {
  struct stat st;
  if (w->sock_ino != 0 && lstat(w->addr.path, &st) == 0 &&
      S_ISSOCK(st.st_mode) && st.st_dev == w->sock_dev &&
      st.st_ino == w->sock_ino)
    unlink(w->addr.path);
  pthread_mutex_lock(&graveyard_lock);
  w->next_lost = graveyard;
  graveyard = w;
  pthread_mutex_unlock(&graveyard_lock);
}

int lp_worker_init(lp_worker_t **out, lp_engine_t *e,
                   const lp_worker_opts_t *o, char *errbuf, size_t errlen) {
  lp_worker_t *w;
  uint32_t i;
  int err = 0;
  *out = NULL;
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if ((o->flush_path == NULL && o->listen == NULL) ||
      (o->flush_path != NULL && o->flush_ms == 0))
    return LP_EINVAL;
  if ((w = lp__calloc(1, sizeof(*w))) == NULL)
    return LP_ENOMEM;
  w->engine = e;
  w->t0 = o->t0;
  w->flush_ms = o->flush_ms;
  w->has_flush = o->flush_path != NULL;
  w->wake[0].fd = w->wake[1].fd = w->server_id.fd = -1;
  if (o->listen != NULL) {
    if ((err = lp_addr_parse(o->listen, &w->addr)) != 0) {
      say(errbuf, errlen, "bad address %s: use HOST:PORT, PORT or unix:PATH",
          o->listen);
      goto fail;
    }
    if (!o->allow_remote && !lp_addr_is_local(&w->addr)) {
      say(errbuf, errlen,
          "refusing to serve on %s: not a loopback address (anyone who can "
          "reach it could read the profile); allow it explicitly",
          o->listen);
      err = LP_EREMOTE;
      goto fail;
    }
  }
  if (o->flush_path != NULL &&
      (w->flush_path = lp__strdup(o->flush_path)) == NULL) {
    err = LP_ENOMEM;
    goto fail;
  }
  for (i = 0; o->meta != NULL && i < o->meta->count; i++)
    if ((err = lp_meta_add(&w->meta, o->meta->keys[i], o->meta->vals[i])))
      goto fail;
  if (uv_loop_init(&w->loop) != 0) {
    err = LP_ENOMEM;
    goto fail;
  }
  w->loop_ready = 1;
  if ((err = wake_init(w)) != 0)
    goto fail;
  if (o->listen != NULL && (err = listen_at(w, errbuf, errlen)) != 0)
    goto fail;
  *out = w;
  return 0;
fail:
  teardown(w);
  worker_free(w);
  return err;
}

const char *lp_worker_address(const lp_worker_t *w) { return w->addr_text; }

int lp_worker_start(lp_worker_t *w) {
  sigset_t all, old;
  int rc;
  if (w->started || w->stopped)
    return LP_ESTATE;
  /* The thread inherits a mask that blocks every signal: signals stay with
   * the program's threads, and a write to a vanished client fails with
   * EPIPE instead of raising SIGPIPE. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = uv_thread_create(&w->thread, run, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return LP_ENOMEM;
  w->started = 1;
  return 0;
}

void lp_worker_stop(lp_worker_t *w) {
  if (w->stopped)
    return;
  w->stopped = 1;
  __atomic_store_n(&w->stopping, 1, __ATOMIC_RELEASE);
  if (w->started) {
    /* send() never writes into a file, and a descriptor that is no longer
     * our socket gets nothing: the thread then sees the flag on its next
     * check. */
    if (!is_lost(w) && fd_check(&w->wake[1]) == 0)
      (void)send(w->wake[1].fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    uv_thread_join(&w->thread);
    wait_gone(__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE));
  }
}

int lp_worker_close(lp_worker_t *w) {
  int rc;
  if (w == NULL)
    return 0;
  lp_worker_stop(w);
  rc = teardown(w); /* after a stopped thread: uv_loop_close is left */
  if (is_lost(w)) {
    bury(w);
    return 0;
  }
  worker_free(w);
  return rc == 0 ? 0 : LP_ESTATE;
}

void lp_worker_stats(const lp_worker_t *w, lp_worker_stats_t *out) {
  out->flushes = __atomic_load_n(&w->stats.flushes, __ATOMIC_RELAXED);
  out->flush_errors = __atomic_load_n(&w->stats.flush_errors, __ATOMIC_RELAXED);
  out->flush_errno = __atomic_load_n(&w->stats.flush_errno, __ATOMIC_RELAXED);
  out->served = __atomic_load_n(&w->stats.served, __ATOMIC_RELAXED);
  out->rejected = __atomic_load_n(&w->stats.rejected, __ATOMIC_RELAXED);
  out->busy = __atomic_load_n(&w->stats.busy, __ATOMIC_RELAXED);
  out->snapshots = __atomic_load_n(&w->stats.snapshots, __ATOMIC_RELAXED);
  out->evicted = __atomic_load_n(&w->stats.evicted, __ATOMIC_RELAXED);
  out->expired = __atomic_load_n(&w->stats.expired, __ATOMIC_RELAXED);
  out->lost = is_lost(w);
  if (out->lost)
    memcpy(out->lost_why, w->lost_why, sizeof(out->lost_why));
  else
    out->lost_why[0] = '\0';
}
