#include "lp_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lp_alloc.h"
#include "lp_error.h"

static const uint8_t magic[8] = {0x89, 'L', 'P', 'R', 'O', 'F', '\r', '\n'};

#define TAG(a, b, c, d)                                                      \
  ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 |               \
   (uint32_t)(d) << 24)
#define TAG_META TAG('M', 'E', 'T', 'A')
#define TAG_FUNC TAG('F', 'U', 'N', 'C')
#define TAG_TASK TAG('T', 'A', 'S', 'K')
#define TAG_NOW TAG('N', 'O', 'W', ' ')
#define NOW_RECORD_SIZE 32 /* 3 x u64 + u32 func + i32 lineno */
#define LINE_RECORD_SIZE 36 /* i32 lineno + 4 x u64 */
#define MAX_STRING (1u << 20)

/* ---- CRC-32 ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  uint32_t n, k, c;
  for (n = 0; n < 256; n++) {
    for (c = n, k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

uint32_t lp_crc32(const void *data, size_t len) {
  const uint8_t *p = data;
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  pthread_once(&crc_once, crc_init);
  for (i = 0; i < len; i++)
    crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

/* ---- meta ---- */

int lp_meta_add(lp_meta_t *meta, const char *key, const char *val) {
  char **nk, **nv, *k, *v;
  nk = lp__realloc(meta->keys, (meta->count + 1) * sizeof(*nk));
  if (nk == NULL)
    return LP_ENOMEM;
  meta->keys = nk;
  nv = lp__realloc(meta->vals, (meta->count + 1) * sizeof(*nv));
  if (nv == NULL)
    return LP_ENOMEM;
  meta->vals = nv;
  k = lp__strdup(key);
  v = lp__strdup(val);
  if (k == NULL || v == NULL) {
    lp__free(k);
    lp__free(v);
    return LP_ENOMEM;
  }
  nk[meta->count] = k;
  nv[meta->count] = v;
  meta->count++;
  return 0;
}

void lp_meta_close(lp_meta_t *meta) {
  uint32_t i;
  for (i = 0; i < meta->count; i++) {
    lp__free(meta->keys[i]);
    lp__free(meta->vals[i]);
  }
  lp__free(meta->keys);
  lp__free(meta->vals);
  memset(meta, 0, sizeof(*meta));
}

/* ---- encoding ---- */

static uint8_t *buf_grab(lp_buf_t *b, size_t n) {
  uint8_t *p;
  if (b->err)
    return NULL;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    p = lp__realloc(b->data, cap);
    if (p == NULL) {
      b->err = LP_ENOMEM;
      return NULL;
    }
    b->data = p;
    b->cap = cap;
  }
  p = b->data + b->len;
  b->len += n;
  return p;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static void emit32(lp_buf_t *b, uint32_t v) {
  uint8_t *p = buf_grab(b, 4);
  if (p)
    put32(p, v);
}

static void emit64(lp_buf_t *b, uint64_t v) {
  uint8_t *p = buf_grab(b, 8);
  if (p)
    put64(p, v);
}

static void emit_str(lp_buf_t *b, const char *s) {
  size_t n = strlen(s);
  uint8_t *p;
  if (n > MAX_STRING)
    n = MAX_STRING;
  emit32(b, (uint32_t)n);
  if ((p = buf_grab(b, n)) != NULL)
    memcpy(p, s, n);
}

/* Starts a section; returns the offset of its length field. */
static size_t section_open(lp_buf_t *b, uint32_t tag) {
  emit32(b, tag);
  emit64(b, 0);
  return b->len - 8;
}

static void section_close(lp_buf_t *b, size_t at) {
  if (!b->err)
    put64(b->data + at, b->len - at - 8);
}

static int line_used(const lp_line_t *ln) {
  return ln->hits != 0 || ln->time != 0 || ln->await != 0;
}

typedef struct {
  lp_buf_t *b;
  uint64_t t0;
} task_emit_t;

static uint64_t since(uint64_t t, uint64_t t0) { return t > t0 ? t - t0 : 0; }

static void emit_task(const lp_task_t *t, void *arg) {
  task_emit_t *te = arg;
  emit64(te->b, t->id);
  emit_str(te->b, t->name);
  emit_str(te->b, t->coro);
  emit64(te->b, t->time);
  emit64(te->b, t->await);
  emit64(te->b, since(t->first, te->t0));
  emit64(te->b, since(t->last, te->t0));
  emit64(te->b, t->folded);
}

int lp_file_encode(const lp_table_t *table, const lp_meta_t *meta,
                   const lp_tasks_t *tasks, uint64_t t0, lp_buf_t *b) {
  lp_file_parts_t parts;
  memset(&parts, 0, sizeof(parts));
  parts.table = table;
  parts.meta = meta;
  parts.tasks = tasks;
  parts.t0 = t0;
  return lp_file_encode_parts(&parts, b);
}

int lp_file_encode_parts(const lp_file_parts_t *parts, lp_buf_t *b) {
  const lp_table_t *table = parts->table;
  const lp_meta_t *meta = parts->meta;
  size_t at;
  uint32_t i, j, used;
  uint8_t *hdr = buf_grab(b, LP_FILE_HEADER_SIZE);
  if (hdr)
    memset(hdr, 0, LP_FILE_HEADER_SIZE);
  if (meta != NULL && meta->count > 0) {
    at = section_open(b, TAG_META);
    emit32(b, meta->count);
    for (i = 0; i < meta->count; i++) {
      emit_str(b, meta->keys[i]);
      emit_str(b, meta->vals[i]);
    }
    section_close(b, at);
  }
  for (i = 0; i < table->nfuncs; i++) {
    const lp_func_t *f = table->funcs[i];
    at = section_open(b, TAG_FUNC);
    emit_str(b, f->file);
    emit_str(b, f->name);
    emit32(b, (uint32_t)f->firstlineno);
    emit32(b, (uint32_t)f->kind);
    emit32(b, (uint32_t)f->base);
    emit32(b, f->nlines);
    for (used = 0, j = 0; j < f->nlines; j++)
      used += line_used(&f->lines[j]);
    emit32(b, used);
    for (j = 0; j < f->nlines; j++) {
      const lp_line_t *ln = &f->lines[j];
      uint8_t *p;
      if (!line_used(ln) || (p = buf_grab(b, LINE_RECORD_SIZE)) == NULL)
        continue;
      put32(p, (uint32_t)(f->base + (int32_t)j));
      put64(p + 4, ln->hits);
      put64(p + 12, ln->time);
      put64(p + 20, ln->await);
      put64(p + 28, ln->max);
    }
    section_close(b, at);
  }
  if (parts->tasks != NULL || parts->task_list != NULL) {
    task_emit_t te;
    te.b = b;
    te.t0 = parts->t0;
    at = section_open(b, TAG_TASK);
    if (parts->tasks != NULL)
      lp_tasks_each(parts->tasks, emit_task, &te);
    for (i = 0; i < parts->ntasks; i++)
      emit_task(&parts->task_list[i], &te);
    section_close(b, at);
  }
  if (parts->with_now) {
    at = section_open(b, TAG_NOW);
    for (i = 0; i < parts->nnow; i++) {
      const lp_now_t *n = &parts->now[i];
      uint8_t *p;
      if (n->func >= table->nfuncs || (p = buf_grab(b, NOW_RECORD_SIZE)) == NULL)
        continue;
      put64(p, n->thread);
      put64(p + 8, n->task);
      put64(p + 16, n->elapsed);
      put32(p + 24, n->func);
      put32(p + 28, (uint32_t)n->lineno);
    }
    section_close(b, at);
  }
  if (b->err)
    return b->err;
  hdr = b->data;
  memcpy(hdr, magic, sizeof(magic));
  put32(hdr + 8, LP_FILE_VERSION);
  put32(hdr + 12, LP_FILE_HEADER_SIZE);
  put64(hdr + 16, b->len - LP_FILE_HEADER_SIZE);
  put32(hdr + 24, lp_crc32(b->data + LP_FILE_HEADER_SIZE,
                           b->len - LP_FILE_HEADER_SIZE));
  put32(hdr + 28, 0);
  return 0;
}

/* ---- writing ---- */

/* 1 if fd is still the file st describes. The worker writes files while
 * the program runs: a program thread may close a descriptor of ours and
 * open one of its own at that number (os.closerange at start-up). */
static int same_file(int fd, const struct stat *st) {
  struct stat now;
  return fstat(fd, &now) == 0 && now.st_dev == st->st_dev &&
         now.st_ino == st->st_ino;
}

/* close(fd) if it is still the file st describes; else leaves the number
 * alone and fails with EBADF. */
static int close_own(int fd, const struct stat *st) {
  if (!same_file(fd, st)) {
    errno = EBADF;
    return -1;
  }
  return close(fd);
}

/* The pid in a temporary file's name, "<name>.tmp-<pid>-<tid>"; 0 if name
 * is not one. */
static long temp_pid(const char *name) {
  const char *p, *at = NULL;
  long pid = 0;
  for (p = name; (p = strstr(p, ".tmp-")) != NULL; p++)
    at = p + 5;
  if (at == NULL)
    return 0;
  for (p = at; *p >= '0' && *p <= '9' && pid < INT_MAX; p++)
    pid = pid * 10 + (*p - '0');
  if (p == at || *p++ != '-' || *p == '\0' || pid > INT_MAX)
    return 0;
  for (; *p >= '0' && *p <= '9'; p++)
    ;
  return *p == '\0' ? pid : 0;
}

/* 1 if the open file fd (st) is one of ours left behind: our user's, a
 * regular file untouched for LP_FILE_STALE_SECONDS, our magic inside. */
static int stale_temp(int fd, const struct stat *st) {
  uint8_t head[sizeof(magic)];
  return S_ISREG(st->st_mode) && st->st_uid == geteuid() &&
         st->st_mtime + LP_FILE_STALE_SECONDS <= time(NULL) &&
         pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
         memcmp(head, magic, sizeof(magic)) == 0;
}

/* A sweep lists a directory (milliseconds for thousands of files), and a
 * temporary file is only stale after LP_FILE_STALE_SECONDS: one sweep per
 * directory every SWEEP_SECONDS is enough. The last one is remembered. */
#define SWEEP_SECONDS 10

static pthread_mutex_t swept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t name; /* FNV-1a of the directory's name (inodes are reused) */
  dev_t dev;
  ino_t ino;
  uint64_t at; /* CLOCK_MONOTONIC seconds + 1; 0: never */
} swept;

/* 1 if dir was not swept in the last SWEEP_SECONDS (and notes it now). */
static int sweep_due(const char *dir) {
  struct stat st;
  struct timespec ts;
  uint64_t now, name = 14695981039346656037ull;
  const char *p;
  int due;
  if (stat(dir, &st) != 0)
    return 0;
  for (p = dir; *p; p++)
    name = (name ^ (uint8_t)*p) * 1099511628211ull;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  now = (uint64_t)ts.tv_sec + 1;
  pthread_mutex_lock(&swept_lock);
  due = swept.at == 0 || swept.name != name || swept.dev != st.st_dev ||
        swept.ino != st.st_ino || now >= swept.at + SWEEP_SECONDS;
  if (due) {
    swept.name = name;
    swept.dev = st.st_dev;
    swept.ino = st.st_ino;
    swept.at = now;
  }
  pthread_mutex_unlock(&swept_lock);
  return due;
}

/* Removes from dir the temporary files of writers that died in
 * lp_file_write_buf (a SIGKILL between open and rename): a name of ours
 * whose pid is gone, and stale_temp. The age rule spares a live writer on
 * another host or in another pid namespace, whose pid we cannot see. */
static void sweep(const char *dir) {
  DIR *d;
  struct dirent *de;
  struct stat dst;
  if (!sweep_due(dir) || (d = opendir(dir)) == NULL)
    return;
  if (fstat(dirfd(d), &dst) != 0) {
    closedir(d);
    return;
  }
  while ((de = readdir(d)) != NULL) {
    long pid = temp_pid(de->d_name);
    struct stat st;
    int fd;
    if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
        errno != ESRCH)
      continue; /* not ours, or its writer lives (EPERM: someone's) */
    fd = openat(dirfd(d), de->d_name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
      continue;
    if (stale_temp(fd, &st))
      unlinkat(dirfd(d), de->d_name, 0);
    close_own(fd, &st);
  }
  if (same_file(dirfd(d), &dst))
    closedir(d); /* else the number is someone else's: keep the DIR */
}

int lp_file_write_buf(const char *path, const lp_buf_t *buf) {
  size_t n = strlen(path), off = 0;
  char *tmp = lp__malloc(n + 48), *slash;
  struct stat st;
  int fd, saved;
  if (tmp == NULL) {
    errno = ENOMEM;
    return LP_EIO;
  }
  /* The directory's leftovers first (its name, cut out of tmp). */
  memcpy(tmp, path, n + 1);
  if ((slash = strrchr(tmp, '/')) == NULL) {
    sweep(".");
  } else {
    *(slash == tmp ? slash + 1 : slash) = '\0'; /* "/x": "/" */
    sweep(tmp);
  }
  /* Unique per thread: the worker's periodic flush and the final write
   * may target the same path at once. The pid lets sweep() know it. */
  snprintf(tmp, n + 48, "%s.tmp-%ld-%ld", path, (long)getpid(),
           (long)syscall(SYS_gettid));
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    goto fail_nofd;
  if (fstat(fd, &st) != 0) {
    fd = -1;
    goto fail;
  }
  while (off < buf->len) {
    ssize_t w;
    if (!same_file(fd, &st)) {
      fd = -1;
      errno = EBADF;
      goto fail;
    }
    w = write(fd, buf->data + off, buf->len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      goto fail;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
    goto fail;
  if (close_own(fd, &st) != 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0)
    goto fail;
  lp__free(tmp);
  return 0;
fail:
  saved = errno;
  if (fd >= 0)
    close_own(fd, &st);
  unlink(tmp);
  errno = saved;
fail_nofd:
  saved = errno;
  lp__free(tmp);
  errno = saved;
  return LP_EIO;
}

int lp_file_write(const char *path, const lp_table_t *table,
                  const lp_meta_t *meta) {
  lp_buf_t b = {0};
  int err = lp_file_encode(table, meta, NULL, 0, &b);
  if (err == 0)
    err = lp_file_write_buf(path, &b);
  lp__free(b.data);
  return err;
}

/* ---- decoding ---- */

typedef struct {
  const uint8_t *p;
  size_t left;
} reader_t;

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int take32(reader_t *r, uint32_t *v) {
  if (r->left < 4)
    return LP_EFORMAT;
  *v = get32(r->p);
  r->p += 4;
  r->left -= 4;
  return 0;
}

static int take64(reader_t *r, uint64_t *v) {
  if (r->left < 8)
    return LP_EFORMAT;
  *v = get64(r->p);
  r->p += 8;
  r->left -= 8;
  return 0;
}

/* Reads a length-prefixed string into a new NUL-terminated copy. */
/* Returns 1 if s[0, n) is well-formed UTF-8 without NUL (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len, k;
    uint32_t cp;
    if (c == 0)
      return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    else
      return 0;
    if (n - i < len)
      return 0;
    for (k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return 0;
    i += len;
  }
  return 1;
}

static int take_str(reader_t *r, char **out) {
  uint32_t n;
  char *s;
  if (take32(r, &n) != 0 || n > r->left || n > MAX_STRING)
    return LP_EFORMAT;
  if (!utf8_ok(r->p, n))
    return LP_EFORMAT;
  s = lp__malloc((size_t)n + 1);
  if (s == NULL)
    return LP_ENOMEM;
  memcpy(s, r->p, n);
  s[n] = 0;
  r->p += n;
  r->left -= n;
  *out = s;
  return 0;
}

static int parse_meta(reader_t *r, lp_meta_t *meta) {
  uint32_t count, i;
  int err;
  if ((err = take32(r, &count)) != 0)
    return err;
  for (i = 0; i < count; i++) {
    char *k = NULL, *v = NULL;
    if ((err = take_str(r, &k)) == 0 && (err = take_str(r, &v)) == 0)
      err = lp_meta_add(meta, k, v);
    lp__free(k);
    lp__free(v);
    if (err)
      return err;
  }
  return r->left == 0 ? 0 : LP_EFORMAT;
}

/* parse_func's line arrays may hold at most this many lines in all, plus
 * one per byte of the file: a few bytes must not claim gigabytes. */
#define LINE_BUDGET ((uint64_t)1 << 20)

static int parse_func(reader_t *r, lp_table_t *t, uint64_t *budget) {
  char *file = NULL, *name = NULL;
  uint32_t firstlineno, kind, base, nlines, used, i;
  lp_func_t *f;
  int err;
  if ((err = take_str(r, &file)) != 0 || (err = take_str(r, &name)) != 0)
    goto out;
  err = LP_EFORMAT;
  if (take32(r, &firstlineno) || take32(r, &kind) || take32(r, &base) ||
      take32(r, &nlines) || take32(r, &used))
    goto out;
  if (kind > LP_KIND_MAX || (int32_t)base < 1 || nlines == 0 ||
      used > nlines || (uint64_t)used * LINE_RECORD_SIZE != r->left)
    goto out;
  if ((int64_t)(int32_t)base + nlines - 1 > INT32_MAX || nlines > *budget)
    goto out;
  *budget -= nlines;
  err = lp_table_add(t, 0, file, name, (int32_t)firstlineno, (int32_t)base,
                     (int32_t)(base + nlines - 1), (lp_kind_t)kind, &f);
  if (err) {
    if (err == LP_EINVAL)
      err = LP_EFORMAT;
    goto out;
  }
  for (i = 0; i < used; i++) {
    const uint8_t *p = r->p + (size_t)i * LINE_RECORD_SIZE;
    int32_t lineno = (int32_t)get32(p);
    lp_line_t *ln = lp_func_line(f, lineno);
    /* Records come in strictly increasing line order, inside the array. */
    if (ln == NULL || (i > 0 && lineno <= (int32_t)get32(p - LINE_RECORD_SIZE))) {
      err = LP_EFORMAT;
      goto out;
    }
    ln->hits = get64(p + 4);
    ln->time = get64(p + 12);
    ln->await = get64(p + 20);
    ln->max = get64(p + 28);
  }
  r->left = 0;
  err = 0;
out:
  lp__free(file);
  lp__free(name);
  return err;
}

/* A TASK section: records until the section ends. */
static int parse_tasks(reader_t *r, lp_profile_t *out) {
  while (r->left > 0) {
    lp_task_t t, *nt;
    int err;
    memset(&t, 0, sizeof(t));
    if ((err = take64(r, &t.id)) != 0)
      return err;
    if ((err = take_str(r, &t.name)) != 0)
      return err;
    if ((err = take_str(r, &t.coro)) != 0 || take64(r, &t.time) ||
        take64(r, &t.await) || take64(r, &t.first) || take64(r, &t.last) ||
        take64(r, &t.folded)) {
      lp__free(t.name);
      lp__free(t.coro);
      return err ? err : LP_EFORMAT;
    }
    nt = lp__realloc(out->tasks, (out->ntasks + 1) * sizeof(*nt));
    if (nt == NULL) {
      lp__free(t.name);
      lp__free(t.coro);
      return LP_ENOMEM;
    }
    out->tasks = nt;
    out->tasks[out->ntasks++] = t;
  }
  return 0;
}

/* A NOW section: fixed-size records, checked against the functions once
 * every section is read. */
static int parse_now(reader_t *r, lp_profile_t *out) {
  size_t n;
  lp_now_t *nn;
  if (r->left % NOW_RECORD_SIZE != 0 || out->has_now)
    return LP_EFORMAT;
  out->has_now = 1;
  n = r->left / NOW_RECORD_SIZE;
  if (n == 0)
    return 0;
  if ((nn = lp__calloc(n, sizeof(*nn))) == NULL)
    return LP_ENOMEM;
  out->now = nn;
  out->nnow = (uint32_t)n;
  for (; n > 0; n--, nn++, r->p += NOW_RECORD_SIZE) {
    nn->thread = get64(r->p);
    nn->task = get64(r->p + 8);
    nn->elapsed = get64(r->p + 16);
    nn->func = get32(r->p + 24);
    nn->lineno = (int32_t)get32(r->p + 28);
  }
  r->left = 0;
  return 0;
}

int lp_file_parse(const void *data, size_t len, lp_profile_t *out) {
  const uint8_t *d = data;
  uint64_t paylen, budget = LINE_BUDGET + len;
  uint32_t i;
  reader_t r;
  memset(out, 0, sizeof(*out));
  lp_table_init(&out->table);
  if (len < sizeof(magic))
    return len == 0 || memcmp(d, magic, len) == 0 ? LP_ETRUNC : LP_EBADMAGIC;
  if (memcmp(d, magic, sizeof(magic)) != 0)
    return LP_EBADMAGIC;
  if (len < LP_FILE_HEADER_SIZE)
    return LP_ETRUNC;
  out->version = get32(d + 8);
  if (out->version > LP_FILE_VERSION)
    return LP_EVERSION;
  if (out->version == 0 || get32(d + 12) != LP_FILE_HEADER_SIZE)
    return LP_EFORMAT;
  paylen = get64(d + 16);
  if (paylen > len - LP_FILE_HEADER_SIZE)
    return LP_ETRUNC;
  if (paylen < len - LP_FILE_HEADER_SIZE)
    return LP_EFORMAT; /* trailing bytes */
  if (lp_crc32(d + LP_FILE_HEADER_SIZE, (size_t)paylen) != get32(d + 24))
    return LP_ECORRUPT;
  r.p = d + LP_FILE_HEADER_SIZE;
  r.left = (size_t)paylen;
  while (r.left > 0) {
    uint32_t tag;
    uint64_t slen;
    reader_t s;
    int err;
    if (take32(&r, &tag) || take64(&r, &slen) || slen > r.left)
      return LP_EFORMAT;
    s.p = r.p;
    s.left = (size_t)slen;
    r.p += slen;
    r.left -= (size_t)slen;
    if (tag == TAG_META)
      err = parse_meta(&s, &out->meta);
    else if (tag == TAG_FUNC)
      err = parse_func(&s, &out->table, &budget);
    else if (tag == TAG_TASK)
      err = parse_tasks(&s, out);
    else if (tag == TAG_NOW)
      err = parse_now(&s, out);
    else
      err = 0; /* a section from a later minor revision: skip it */
    if (err)
      return err;
  }
  for (i = 0; i < out->nnow; i++)
    if (out->now[i].func >= out->table.nfuncs)
      return LP_EFORMAT;
  return 0;
}

int lp_file_read(const char *path, lp_profile_t *out) {
  struct stat st;
  uint8_t *data;
  size_t off = 0;
  int fd, err, saved;
  memset(out, 0, sizeof(*out));
  lp_table_init(&out->table);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return LP_EIO;
  if (fstat(fd, &st) != 0) {
    saved = errno;
    close(fd);
    errno = saved;
    return LP_EIO;
  }
  if (S_ISDIR(st.st_mode) || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > LP_FILE_MAX_SIZE) {
    close(fd);
    errno = S_ISDIR(st.st_mode) ? EISDIR : S_ISREG(st.st_mode) ? EFBIG : EINVAL;
    return LP_EIO;
  }
  data = lp__malloc((size_t)st.st_size);
  if (data == NULL) {
    close(fd);
    return LP_ENOMEM;
  }
  while (off < (size_t)st.st_size) {
    ssize_t n = read(fd, data + off, (size_t)st.st_size - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        break; /* shrank while reading: parse what we have */
      saved = errno;
      close(fd);
      lp__free(data);
      errno = saved;
      return LP_EIO;
    }
    off += (size_t)n;
  }
  close(fd);
  err = lp_file_parse(data, off, out);
  lp__free(data);
  return err;
}

void lp_profile_close(lp_profile_t *p) {
  uint32_t i;
  for (i = 0; i < p->ntasks; i++) {
    lp__free(p->tasks[i].name);
    lp__free(p->tasks[i].coro);
  }
  lp__free(p->tasks);
  p->tasks = NULL;
  p->ntasks = 0;
  lp__free(p->now);
  p->now = NULL;
  p->nnow = 0;
  p->has_now = 0;
  lp_table_close(&p->table);
  lp_meta_close(&p->meta);
}
