/* lp_module.c - the lineprof._lineprof module: the Profiler type, the
 * snapshot and file conversions, and the error translation. The seam is
 * documented in docs/binding.md. */
#include "lp_ext.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lp_alloc.h"
#include "lp_clock.h"
#include "lp_file.h"
#include "lp_proto.h"
#include "lp_snapshot.h"
#include "lp_worker.h"

#ifndef LINEPROF_VERSION
#define LINEPROF_VERSION "0"
#endif

/* A thread not seen yet holds a gen no profiler has and that is not 0 (the
 * recording field of a profiler not recording). */
_Thread_local lp__tls_t lp__tls LP_TLS_MODEL = {UINT64_MAX, NULL};

static PyObject *FormatError;
static PyObject *str_asyncio;
/* Interned names for the per-task calls: no string is made per call, and
 * the attribute caches of the type see the same key every time. */
static PyObject *str_get_name, *str_get_coro, *str_qualname;
static lp_profiler_t *active; /* the enabled profiler, if any (borrowed) */
lp_profiler_t *lp__hooked;
static uint64_t next_gen = 1;

/* How long the TSC is calibrated against CLOCK_MONOTONIC (lp_clock.h). */
#define TSC_CALIBRATION_NS 10000000u

/* ---- errors ---- */

/* Turns a core error code into a Python exception. Returns NULL. */
static PyObject *raise_lp(int err, const char *path) {
  if (err == LP_ENOMEM)
    return PyErr_NoMemory();
  if (err == LP_EIO) {
    if (errno == 0)
      errno = EIO;
    return path != NULL ? PyErr_SetFromErrnoWithFilename(PyExc_OSError, path)
                        : PyErr_SetFromErrno(PyExc_OSError);
  }
  if (err == LP_EBADMAGIC || err == LP_EVERSION || err == LP_ETRUNC ||
      err == LP_ECORRUPT || err == LP_EFORMAT)
    PyErr_SetString(FormatError, lp_strerror(err));
  else if (err == LP_EBUSY)
    PyErr_SetString(PyExc_RuntimeError, lp_strerror(err));
  else
    PyErr_SetString(PyExc_ValueError, lp_strerror(err));
  return NULL;
}

void lp__fail(lp_profiler_t *p, int err, const char *where) {
  PyErr_Clear();
  if (p->error == 0) {
    p->error = err;
    snprintf(p->errmsg, sizeof(p->errmsg), "%s in %s", lp_strerror(err),
             where);
    PySys_WriteStderr("lineprof: recording stopped: %s\n", p->errmsg);
  }
  p->recording = 0;
}

lp_thread_t *lp__thread_slow(lp_profiler_t *p) {
  lp_thread_t *th;
  int err = lp_engine_thread_new(&p->eng, (uint64_t)PyThread_get_thread_ident(),
                                 &th);
  if (err) {
    lp__fail(p, err, "thread setup");
    return NULL;
  }
  lp__tls.gen = p->gen;
  lp__tls.th = th;
  return th;
}

/* ---- weak references to suspended generators ---- */

void lp__release_user(lp_profiler_t *p, uintptr_t user) {
  PyObject *wr = (PyObject *)user;
  if (wr == NULL)
    return;
  lp_map_del(&p->wr_keys, user);
  Py_DECREF(wr);
}

static void release_user_cb(uintptr_t user) {
  if (active != NULL)
    lp__release_user(active, user);
  else
    Py_XDECREF((PyObject *)user);
}

int lp__watch_gen(lp_profiler_t *p, lp_frame_t *top, PyObject *gen) {
  PyObject *wr;
  int err;
  /* A coroutine of a task ends with an event (return, or an exception
   * thrown in), or dies with its task (on_task_dead drops it then): no weak
   * reference, which would be one more object for the collector per
   * coroutine. */
  if (top->user != 0 ||
      (top->func->kind == LP_KIND_COROUTINE && top->task != NULL))
    return 0;
  wr = PyWeakref_NewRef(gen, p->wr_cb);
  if (wr == NULL) {
    /* Not weakly referenceable (a foreign generator type): no GC notice. */
    PyErr_Clear();
    return 0;
  }
  if ((err = lp_map_put(&p->wr_keys, (uintptr_t)wr, (uintptr_t)gen)) != 0) {
    Py_DECREF(wr);
    lp__fail(p, err, "watching a generator");
    return -1;
  }
  top->user = (uintptr_t)wr;
  return 0;
}

/* The weakref callback: a generator parked in the engine was destroyed
 * while suspended. Its suspension ends now. */
static PyObject *on_gen_dead(PyObject *self, PyObject *wr) {
  lp_profiler_t *p = (lp_profiler_t *)self;
  uintptr_t key, user = 0;
  if (lp_map_get(&p->wr_keys, (uintptr_t)wr, &key)) {
    LP_WRITE_BEGIN(p);
    lp_map_del(&p->wr_keys, (uintptr_t)wr);
    lp_engine_drop(&p->eng, key, lp_engine_now(&p->eng), &user);
    LP_WRITE_END(p);
    /* The caller may still use wr after we return: release it later. */
    Py_XDECREF(p->wr_dead);
    p->wr_dead = (PyObject *)user; /* our reference, == wr */
  }
  Py_RETURN_NONE;
}

static PyMethodDef on_gen_dead_def = {"_on_gen_dead", on_gen_dead, METH_O,
                                      NULL};

/* ---- event-loop tasks ---- */

/* Returns a new C string copy of str(obj) or of a fallback. */
static PyObject *str_or(PyObject *obj, const char *fallback) {
  PyObject *s;
  if (obj != NULL && PyUnicode_CheckExact(obj)) {
    Py_INCREF(obj);
    return obj;
  }
  s = obj != NULL ? PyObject_Str(obj) : NULL;
  if (s == NULL) {
    PyErr_Clear();
    s = PyUnicode_FromString(fallback);
  }
  return s;
}

/* Creates the record of a task seen for the first time; eager: its first
 * step runs inside another task's frame. Returns NULL (no attribution) if
 * the task cannot be watched or on failure (recorded). */
static lp_task_t *task_new(lp_profiler_t *p, PyObject *task, uint64_t t,
                           int eager) {
  PyObject *name_obj, *coro, *qual, *name_s, *coro_s, *wr;
  const char *name, *coro_name;
  lp_task_t *rec = NULL;
  int err;
  wr = PyWeakref_NewRef(task, p->task_cb);
  if (wr == NULL) {
    PyErr_Clear(); /* not weakly referenceable: we could not see it die */
    return NULL;
  }
  name_obj = PyObject_CallMethodObjArgs(task, str_get_name, NULL);
  coro = PyObject_CallMethodObjArgs(task, str_get_coro, NULL);
  qual = coro != NULL ? PyObject_GetAttr(coro, str_qualname) : NULL;
  name_s = str_or(name_obj, "?");
  coro_s = str_or(qual, "?");
  Py_XDECREF(name_obj);
  Py_XDECREF(coro);
  Py_XDECREF(qual);
  if (name_s == NULL || coro_s == NULL ||
      (name = PyUnicode_AsUTF8(name_s)) == NULL ||
      (coro_name = PyUnicode_AsUTF8(coro_s)) == NULL) {
    err = LP_ENOMEM;
    goto fail;
  }
  if ((err = lp_tasks_new(&p->eng.tasks, name, coro_name, t, &rec)) != 0)
    goto fail;
  if ((err = lp_map_put(&p->task_index, (uintptr_t)task, (uintptr_t)rec)) ||
      (err = lp_map_put(&p->task_wrs, (uintptr_t)wr, (uintptr_t)task))) {
    lp_map_del(&p->task_index, (uintptr_t)task);
    lp_tasks_unref(&p->eng.tasks, rec);
    rec = NULL;
    goto fail;
  }
  Py_DECREF(name_s);
  Py_DECREF(coro_s);
  if (eager && p->nunnamed < (int)(sizeof(p->unnamed) / sizeof(p->unnamed[0])))
    p->unnamed[p->nunnamed++] = task; /* borrowed: checked against task_index */
  return rec; /* wr is owned through task_wrs */
fail:
  Py_XDECREF(name_s);
  Py_XDECREF(coro_s);
  Py_DECREF(wr);
  lp__fail(p, err, "task setup");
  return NULL;
}

static void drop_parked(lp_profiler_t *p, uintptr_t key, uint64_t t);

/* The coroutines of task rec still parked when it died (destroyed while
 * pending) died with it: the ones lp__watch_gen did not watch. */
static void drop_task_frames(lp_profiler_t *p, lp_task_t *rec, uint64_t t) {
  size_t i;
  for (i = 0; rec->parked > 0 && p->eng.parked.keys != NULL &&
              i <= p->eng.parked.mask;
       i++) {
    uintptr_t key = p->eng.parked.keys[i];
    const lp_frame_t *fr = &p->eng.pool[p->eng.parked.vals[i]];
    if (key != 0 && fr->task == rec && fr->user == 0 &&
        fr->func->kind == LP_KIND_COROUTINE) {
      drop_parked(p, key, t);
      i--; /* backward-shift deletion may have moved an entry here */
    }
  }
}

/* The weakref callback: a task object died. */
static PyObject *on_task_dead(PyObject *self, PyObject *wr) {
  lp_profiler_t *p = (lp_profiler_t *)self;
  uintptr_t task, rec;
  if (lp_map_get(&p->task_wrs, (uintptr_t)wr, &task)) {
    PyObject *old = p->wr_dead;
    lp_map_del(&p->task_wrs, (uintptr_t)wr);
    if (lp_map_get(&p->task_index, task, &rec)) {
      drop_task_frames(p, (lp_task_t *)rec, lp_engine_now(&p->eng));
      LP_WRITE_BEGIN(p);
      lp_map_del(&p->task_index, task);
      lp_tasks_unref(&p->eng.tasks, (lp_task_t *)rec);
      LP_WRITE_END(p);
    }
    p->wr_dead = wr; /* our reference; released at the next callback */
    Py_XDECREF(old);
  }
  Py_RETURN_NONE;
}

static PyMethodDef on_task_dead_def = {"_on_task_dead", on_task_dead, METH_O,
                                       NULL};

/* Re-reads the names of eagerly started tasks: asyncio names such a task
 * only after its first step, which runs inside create_task() where lineprof
 * first sees it. Called at the next frame start and at profile writes. A
 * task that died meanwhile keeps the name it had when first seen. */
void lp__refresh_task_names(lp_profiler_t *p) {
  int i, keep = 0;
  for (i = 0; i < p->nunnamed; i++) {
    PyObject *task = p->unnamed[i], *name;
    uintptr_t rec;
    const char *s;
    if (!lp_map_get(&p->task_index, (uintptr_t)task, &rec))
      continue; /* dead: its address may be reused, do not touch it */
    if (((lp_task_t *)rec)->running > 0) {
      p->unnamed[keep++] = task; /* still in its first step: not named yet */
      continue;
    }
    name = PyObject_CallMethodObjArgs(task, str_get_name, NULL);
    if (name != NULL && PyUnicode_Check(name) &&
        (s = PyUnicode_AsUTF8(name)) != NULL) {
      LP_WRITE_BEGIN(p);
      lp_task_rename(&p->eng.tasks, (lp_task_t *)rec, s);
      LP_WRITE_END(p);
    }
    Py_XDECREF(name);
    PyErr_Clear();
  }
  p->nunnamed = keep;
}

/* Returns a new reference to the running loop's current task, or Py_None,
 * or NULL when asyncio is not in use or no loop runs in this thread. */
static PyObject *current_task(lp_profiler_t *p) {
  PyObject *loop, *task;
  if (p->cur_task == NULL) {
    PyObject *asyncio = PyImport_GetModule(str_asyncio);
    if (asyncio == NULL)
      return NULL; /* asyncio is not in use */
    p->cur_task = PyObject_GetAttrString(asyncio, "current_task");
    p->get_loop = PyObject_GetAttrString(asyncio, "_get_running_loop");
    Py_DECREF(asyncio);
    if (p->cur_task == NULL || p->get_loop == NULL) {
      Py_CLEAR(p->cur_task);
      Py_CLEAR(p->get_loop);
      return NULL;
    }
  }
  loop = PyObject_CallObject(p->get_loop, NULL);
  if (loop == NULL || loop == Py_None) {
    Py_XDECREF(loop);
    return NULL;
  }
  task = PyObject_CallFunctionObjArgs(p->cur_task, loop, NULL);
  Py_DECREF(loop);
  return task;
}

void lp__attach_task(lp_profiler_t *p, lp_thread_t *th, uint64_t t) {
  lp_task_t *rec = NULL;
  PyObject *exc_type, *exc, *tb, *task;
  uintptr_t v;
  /* A plain function runs in its caller's task. A coroutine may be the
   * first step of a new task run eagerly inside create_task() (3.12's
   * eager_task_factory), on top of its creator's frame: look it up. */
  if (p->nunnamed > 0)
    lp__refresh_task_names(p);
  if (lp_engine_top(th)->func->kind == LP_KIND_FUNCTION)
    rec = lp_engine_caller_task(th);
  if (rec == NULL) {
    /* An exception in flight (a frame started while one propagates) is
     * set aside for the lookup and put back. */
    int saved = PyErr_Occurred() != NULL;
    if (saved)
      PyErr_Fetch(&exc_type, &exc, &tb);
    task = current_task(p);
    if (task != NULL && task != Py_None) {
      rec = lp_map_get(&p->task_index, (uintptr_t)task, &v)
                ? (lp_task_t *)v
                : task_new(p, task, t, lp_engine_caller_task(th) != NULL);
    }
    Py_XDECREF(task);
    PyErr_Clear();
    if (saved)
      PyErr_Restore(exc_type, exc, tb);
  }
  if (rec != NULL)
    lp_engine_set_task(&p->eng, th, rec, t);
}

/* ---- conversions ---- */

static PyObject *table_to_list(const lp_table_t *t) {
  PyObject *funcs = PyList_New(0);
  uint32_t i, j;
  if (funcs == NULL)
    return NULL;
  for (i = 0; i < t->nfuncs; i++) {
    const lp_func_t *f = t->funcs[i];
    PyObject *lines = PyList_New(0), *d;
    if (lines == NULL)
      goto fail;
    for (j = 0; j < f->nlines; j++) {
      const lp_line_t *ln = &f->lines[j];
      PyObject *rec;
      if (ln->hits == 0 && ln->time == 0 && ln->await == 0)
        continue;
      rec = Py_BuildValue("(iKKKK)", f->base + (int32_t)j,
                          (unsigned long long)ln->hits,
                          (unsigned long long)ln->time,
                          (unsigned long long)ln->await,
                          (unsigned long long)ln->max);
      if (rec == NULL || PyList_Append(lines, rec) != 0) {
        Py_XDECREF(rec);
        Py_DECREF(lines);
        goto fail;
      }
      Py_DECREF(rec);
    }
    d = Py_BuildValue("{s:s,s:s,s:i,s:s,s:N}", "file", f->file, "name",
                      f->name, "firstlineno", f->firstlineno, "kind",
                      lp_kind_name(f->kind), "lines", lines);
    if (d == NULL || PyList_Append(funcs, d) != 0) {
      Py_XDECREF(d);
      goto fail;
    }
    Py_DECREF(d);
  }
  return funcs;
fail:
  Py_DECREF(funcs);
  return NULL;
}

static PyObject *meta_to_dict(const lp_meta_t *m) {
  PyObject *d = PyDict_New();
  uint32_t i;
  if (d == NULL)
    return NULL;
  for (i = 0; i < m->count; i++) {
    PyObject *v = PyUnicode_DecodeUTF8(m->vals[i], strlen(m->vals[i]),
                                       "replace");
    if (v == NULL || PyDict_SetItemString(d, m->keys[i], v) != 0) {
      Py_XDECREF(v);
      Py_DECREF(d);
      return NULL;
    }
    Py_DECREF(v);
  }
  return d;
}

typedef struct {
  PyObject *list; /* NULL after a failure */
  uint64_t t0;
} task_list_t;

static uint64_t since(uint64_t t, uint64_t t0) { return t > t0 ? t - t0 : 0; }

static void append_task(const lp_task_t *t, void *arg) {
  task_list_t *tl = arg;
  PyObject *d;
  if (tl->list == NULL)
    return;
  d = Py_BuildValue("{s:K,s:s,s:s,s:K,s:K,s:K,s:K,s:K}", "id",
                    (unsigned long long)t->id, "name", t->name, "coro",
                    t->coro, "time", (unsigned long long)t->time, "await",
                    (unsigned long long)t->await, "first",
                    (unsigned long long)since(t->first, tl->t0), "last",
                    (unsigned long long)since(t->last, tl->t0), "folded",
                    (unsigned long long)t->folded);
  if (d == NULL || PyList_Append(tl->list, d) != 0)
    Py_CLEAR(tl->list);
  Py_XDECREF(d);
}

/* Builds the stats dict of docs/binding.md; tasks is a list it steals. */
static PyObject *stats_dict(const lp_table_t *t, const lp_meta_t *m,
                            PyObject *tasks) {
  PyObject *funcs, *meta;
  if (tasks == NULL)
    return NULL;
  if ((funcs = table_to_list(t)) == NULL) {
    Py_DECREF(tasks);
    return NULL;
  }
  if ((meta = meta_to_dict(m)) == NULL) {
    Py_DECREF(funcs);
    Py_DECREF(tasks);
    return NULL;
  }
  return Py_BuildValue("{s:d,s:N,s:N,s:N}", "unit", 1e-9, "meta", meta,
                       "functions", funcs, "tasks", tasks);
}

/* Fills m with what this process knows about the run, then the caller's
 * str -> str pairs from extra (may be NULL). Returns 0 or -1 (exception). */
static int build_meta(lp_meta_t *m, PyObject *extra) {
  char created[64];
  uint64_t now = lp_clock_realtime();
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  snprintf(created, sizeof(created), "%llu.%09llu",
           (unsigned long long)(now / 1000000000u),
           (unsigned long long)(now % 1000000000u));
  if (lp_meta_add(m, "python", PY_VERSION) ||
      lp_meta_add(m, "backend", LP_BACKEND_NAME) ||
      lp_meta_add(m, "lineprof", LINEPROF_VERSION) ||
      lp_meta_add(m, "created", created)) {
    PyErr_NoMemory();
    return -1;
  }
  if (extra == NULL || extra == Py_None)
    return 0;
  if (!PyDict_Check(extra)) {
    PyErr_SetString(PyExc_TypeError, "meta must be a dict of str to str");
    return -1;
  }
  while (PyDict_Next(extra, &pos, &k, &v)) {
    const char *ks, *vs;
    if (!PyUnicode_Check(k) || !PyUnicode_Check(v)) {
      PyErr_SetString(PyExc_TypeError, "meta must be a dict of str to str");
      return -1;
    }
    if ((ks = PyUnicode_AsUTF8(k)) == NULL || (vs = PyUnicode_AsUTF8(v)) == NULL)
      return -1;
    if (lp_meta_add(m, ks, vs)) {
      PyErr_NoMemory();
      return -1;
    }
  }
  return 0;
}

/* ---- the Profiler type ---- */

static PyObject *Profiler_new(PyTypeObject *type, PyObject *args,
                              PyObject *kw) {
  lp_profiler_t *p;
  if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw))) {
    PyErr_SetString(PyExc_TypeError, "Profiler() takes no arguments");
    return NULL;
  }
  p = (lp_profiler_t *)type->tp_alloc(type, 0);
  if (p == NULL)
    return NULL;
  lp_clock_tsc_finish(TSC_CALIBRATION_NS);
  if (lp_engine_init(&p->eng, lp_clock_now, NULL) != 0) {
    lp_engine_close(&p->eng);
    Py_TYPE(p)->tp_free((PyObject *)p);
    return PyErr_NoMemory();
  }
  lp_map_init(&p->wr_keys);
  lp_map_init(&p->task_index);
  lp_map_init(&p->task_wrs);
  lp_map_init(&p->jump_lines);
  p->t0 = lp_engine_now(&p->eng);
  p->gen = next_gen++;
  p->tool_id = -1;
  p->codes = PyList_New(0);
  p->wr_cb = PyCFunction_New(&on_gen_dead_def, (PyObject *)p);
  p->task_cb = PyCFunction_New(&on_task_dead_def, (PyObject *)p);
  if (p->codes == NULL || p->wr_cb == NULL || p->task_cb == NULL) {
    Py_DECREF(p);
    return NULL;
  }
  return (PyObject *)p;
}

static int Profiler_traverse(lp_profiler_t *p, visitproc visit, void *arg) {
  Py_VISIT(p->codes);
  Py_VISIT(p->wr_cb);
  Py_VISIT(p->task_cb);
  {
    size_t i;
    for (i = 0; i < LP_MON_COUNT; i++)
      Py_VISIT(p->mon[i]);
  }
  Py_VISIT(p->cur_task);
  Py_VISIT(p->get_loop);
  return 0;
}

static void drop_user_cb(uintptr_t user) { Py_XDECREF((PyObject *)user); }

/* Removes the hook if it is this profiler's. Called from tp_clear, which the
 * garbage collector may run before tp_dealloc, and from tp_dealloc. */
static void unhook(lp_profiler_t *p) {
  PyObject *exc_type, *exc, *tb;
  if (active == p)
    active = NULL;
  if (lp__hooked != p)
    return;
  PyErr_Fetch(&exc_type, &exc, &tb);
  p->recording = 0;
  lp__hook_remove(p);
  lp__hooked = NULL;
  PyErr_Restore(exc_type, exc, tb);
}

static int Profiler_clear(lp_profiler_t *p) {
  unhook(p);
  Py_CLEAR(p->codes);
  Py_CLEAR(p->wr_cb);
  Py_CLEAR(p->task_cb);
  Py_CLEAR(p->cur_task);
  Py_CLEAR(p->get_loop);
  return 0;
}

static void worker_forget(lp_profiler_t *p);

static void Profiler_dealloc(lp_profiler_t *p) {
  PyObject_GC_UnTrack(p);
  unhook(p);
  worker_forget(p); /* before the engine it reads goes */
  lp_engine_each_user(&p->eng, drop_user_cb);
  lp_engine_close(&p->eng);
  lp_map_close(&p->wr_keys);
  {
    size_t i; /* the task weak references we own */
    for (i = 0; p->task_wrs.keys != NULL && i <= p->task_wrs.mask; i++)
      if (p->task_wrs.keys[i] != 0)
        Py_DECREF((PyObject *)p->task_wrs.keys[i]);
  }
  lp_map_close(&p->task_wrs);
  lp_map_close(&p->task_index);
  lp_map_close(&p->jump_lines);
  Py_CLEAR(p->wr_dead);
  Profiler_clear(p);
  Py_TYPE(p)->tp_free((PyObject *)p);
}

static int kind_ok(int kind) { return kind >= 0 && kind <= LP_KIND_MAX; }

static PyObject *Profiler_add_code(lp_profiler_t *p, PyObject *args) {
  PyObject *code;
  const char *file, *name;
  int kind, first, last, err;
  lp_func_t *f;
  if (!PyArg_ParseTuple(args, "O!issii:add_code", &PyCode_Type, &code, &kind,
                        &file, &name, &first, &last))
    return NULL;
  if (!kind_ok(kind) || first < 1) {
    PyErr_SetString(PyExc_ValueError, "bad kind or line range");
    return NULL;
  }
  if (lp_table_find(&p->eng.table, (uintptr_t)code) != NULL)
    Py_RETURN_NONE;
  if (last < first)
    last = first;
  {
    LP_WRITE_BEGIN(p);
    err = lp_table_add(&p->eng.table, (uintptr_t)code, file, name, first,
                       first, last, (lp_kind_t)kind, &f);
    LP_WRITE_END(p);
  }
  if (err)
    return raise_lp(err, NULL);
  if (PyList_Append(p->codes, code) != 0)
    return NULL; /* the func stays registered but unpinned: harmless */
  if (lp__hooked == p && lp__hook_add_code(p, code) != 0)
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *Profiler_enable(lp_profiler_t *p, PyObject *unused) {
  (void)unused;
  if (p->enabled)
    Py_RETURN_NONE;
  if (active != NULL && active != p)
    return raise_lp(LP_EBUSY, NULL);
  if (lp__hooked != p) {
    if (lp__hooked != NULL) {
      lp__hook_remove(lp__hooked);
      lp__hooked = NULL;
    }
    if (lp__hook_install(p) != 0)
      return NULL;
    lp__hooked = p;
  }
  active = p;
  p->enabled = 1;
  p->recording = p->error == 0 ? p->gen : 0;
  lp__hook_resume(p);
  Py_RETURN_NONE;
}

static PyObject *Profiler_disable(lp_profiler_t *p, PyObject *unused) {
  (void)unused;
  if (!p->enabled)
    Py_RETURN_NONE;
  lp__hook_pause(p);
  p->enabled = 0;
  p->recording = 0;
  /* Running frames stop being timed now; parked ones stay parked. */
  {
    LP_WRITE_BEGIN(p);
    lp_engine_detach(&p->eng, lp_engine_now(&p->eng), release_user_cb);
    LP_WRITE_END(p);
  }
  active = NULL;
  Py_RETURN_NONE;
}

/* Ends, at t, the suspension of a parked generator frame: its generator
 * finished without running its frame (3.13+ closes a generator suspended
 * outside any try block that way, with no event). */
static void drop_parked(lp_profiler_t *p, uintptr_t key, uint64_t t) {
  uintptr_t user = 0;
  int dropped;
  LP_WRITE_BEGIN(p);
  dropped = lp_engine_drop(&p->eng, key, t, &user);
  LP_WRITE_END(p);
  if (dropped)
    lp__release_user(p, user);
}

/* Drops parked frames whose generator has finished (gi_frame and its
 * coroutine/async twins are None). Only frames holding a weak reference
 * are checked: their generator is known to be alive. */
static void reap_finished(lp_profiler_t *p, uint64_t t) {
  static const char *const attrs[] = {"", "gi_frame", "cr_frame", "ag_frame"};
  size_t i;
  for (i = 0; p->eng.parked.keys != NULL && i <= p->eng.parked.mask; i++) {
    uintptr_t key = p->eng.parked.keys[i];
    lp_frame_t *fr;
    PyObject *frame;
    if (key == 0)
      continue;
    fr = &p->eng.pool[p->eng.parked.vals[i]];
    if (fr->user == 0 || fr->func->kind == LP_KIND_FUNCTION)
      continue;
    frame = PyObject_GetAttrString((PyObject *)key, attrs[fr->func->kind]);
    if (frame == Py_None) {
      drop_parked(p, key, t);
      i--; /* backward-shift deletion may have moved an entry here */
    }
    Py_XDECREF(frame);
    PyErr_Clear();
  }
}

static PyObject *Profiler_drop(lp_profiler_t *p, PyObject *gen) {
  drop_parked(p, (uintptr_t)gen, lp_engine_now(&p->eng));
  Py_RETURN_NONE;
}

/* Brings the counters up to now before a snapshot or a write: finished
 * parked generators dropped, eager task names re-read, open time counted. */
static void catch_up(lp_profiler_t *p) {
  uint64_t now = lp_engine_now(&p->eng);
  reap_finished(p, now);
  lp__refresh_task_names(p);
  {
    LP_WRITE_BEGIN(p);
    lp_engine_settle(&p->eng, now);
    LP_WRITE_END(p);
  }
}

/* The stats are built from a copy (lp_snapshot_take): building Python
 * objects can run the garbage collector, whose callbacks retire task
 * records, which a walk of the engine's own registry would then read. */
static PyObject *Profiler_snapshot(lp_profiler_t *p, PyObject *unused) {
  lp_meta_t meta = {0};
  lp_snapshot_t snap;
  task_list_t tl;
  PyObject *r = NULL;
  uint32_t i;
  int err;
  (void)unused;
  catch_up(p);
  if ((err = lp_snapshot_take(&p->eng, &snap)) != 0) {
    lp_snapshot_close(&snap);
    return raise_lp(err, NULL);
  }
  if (build_meta(&meta, NULL) == 0) {
    tl.list = PyList_New(0);
    tl.t0 = p->t0;
    for (i = 0; tl.list != NULL && i < snap.ntasks; i++)
      append_task(&snap.tasks[i], &tl);
    r = stats_dict(&snap.table, &meta, tl.list);
  }
  lp_meta_close(&meta);
  lp_snapshot_close(&snap);
  return r;
}

static PyObject *Profiler_dump(lp_profiler_t *p, PyObject *args,
                               PyObject *kw) {
  static char *kwlist[] = {"path", "meta", NULL};
  PyObject *path_obj, *extra = NULL, *bytes = NULL;
  lp_meta_t meta = {0};
  lp_buf_t buf = {0};
  const char *path;
  int err;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:dump", kwlist, &path_obj,
                                   &extra))
    return NULL;
  if (!PyUnicode_FSConverter(path_obj, &bytes))
    return NULL;
  path = PyBytes_AS_STRING(bytes);
  catch_up(p);
  if (build_meta(&meta, extra) != 0)
    goto fail;
  err = lp_file_encode(&p->eng.table, &meta, &p->eng.tasks, p->t0, &buf);
  if (err == 0) {
    Py_BEGIN_ALLOW_THREADS
    err = lp_file_write_buf(path, &buf);
    Py_END_ALLOW_THREADS
  }
  if (err) {
    raise_lp(err, path);
    goto fail;
  }
  lp__free(buf.data);
  lp_meta_close(&meta);
  Py_DECREF(bytes);
  Py_RETURN_NONE;
fail:
  lp__free(buf.data);
  lp_meta_close(&meta);
  Py_DECREF(bytes);
  return NULL;
}

static PyObject *Profiler_clear_stats(lp_profiler_t *p, PyObject *unused) {
  LP_WRITE_BEGIN(p);
  (void)unused;
  /* Open stretches count up to now, and so vanish with the rest. */
  lp_engine_settle(&p->eng, lp_engine_now(&p->eng));
  lp_table_clear(&p->eng.table);
  lp_tasks_clear(&p->eng.tasks);
  LP_WRITE_END(p);
  Py_RETURN_NONE;
}

static PyObject *Profiler_get_enabled(lp_profiler_t *p, void *c) {
  (void)c;
  return PyBool_FromLong(p->enabled);
}

static PyObject *Profiler_get_error(lp_profiler_t *p, void *c) {
  (void)c;
  if (p->error == 0)
    Py_RETURN_NONE;
  return PyUnicode_FromString(p->errmsg);
}

static PyObject *Profiler_get_stack_depth(lp_profiler_t *p, void *c) {
  lp_thread_t *th;
  (void)c;
  if (lp__tls.gen != p->gen || (th = lp__tls.th) == NULL)
    return PyLong_FromLong(0);
  return PyLong_FromUnsignedLong(th->depth);
}

static PyObject *Profiler_get_parked(lp_profiler_t *p, void *c) {
  (void)c;
  return PyLong_FromUnsignedLong(p->eng.nparked);
}

/* ---- the native worker ---- */

static lp_profiler_t *worker_owner; /* the profiler whose worker runs */

/* Starts a worker from p's saved options. Returns 0, or a core error with
 * a one-line explanation in errbuf. */
static int worker_launch(lp_profiler_t *p, char *errbuf, size_t errlen) {
  lp_worker_opts_t o;
  int err;
  memset(&o, 0, sizeof(o));
  o.flush_path = p->w_flush;
  o.flush_ms = p->w_ms;
  o.listen = p->w_listen;
  o.allow_remote = p->w_remote;
  o.meta = &p->w_meta;
  o.t0 = p->t0;
  if ((err = lp_worker_init(&p->worker, &p->eng, &o, errbuf, errlen)) != 0)
    return err;
  if ((err = lp_worker_start(p->worker)) != 0) {
    lp_worker_close(p->worker);
    p->worker = NULL;
    snprintf(errbuf, errlen, "cannot start the worker thread: %s",
             lp_strerror(err));
    return err;
  }
  if (p->w_listen != NULL) { /* restart at the same port after a fork */
    char *bound = lp__strdup(lp_worker_address(p->worker));
    if (bound != NULL) {
      lp__free(p->w_listen);
      p->w_listen = bound;
    }
  }
  worker_owner = p;
  return 0;
}

/* Stops and frees the worker, if any (joins its thread: short). A worker
 * that lost its descriptors to the program stopped early: one line on
 * stderr says so. Not a warning: -W error would raise it into the
 * program. */
static void worker_halt(lp_profiler_t *p) {
  lp_worker_stats_t st;
  if (p->worker == NULL)
    return;
  Py_BEGIN_ALLOW_THREADS
  lp_worker_stop(p->worker);
  lp_worker_stats(p->worker, &st);
  lp_worker_close(p->worker);
  Py_END_ALLOW_THREADS
  p->worker = NULL;
  if (worker_owner == p)
    worker_owner = NULL;
  if (st.lost)
    PySys_WriteStderr("lineprof: warning: the worker stopped early: %.160s; "
                      "no periodic writes or live view after that (the "
                      "profile itself is complete)\n", st.lost_why);
}

static void worker_forget(lp_profiler_t *p) {
  worker_halt(p);
  lp__free(p->w_flush);
  lp__free(p->w_listen);
  p->w_flush = p->w_listen = NULL;
  lp_meta_close(&p->w_meta);
  p->w_forked = 0;
  if (worker_owner == p) /* stopped while a restart after fork() waited */
    worker_owner = NULL;
}

static PyObject *Profiler_start_worker(lp_profiler_t *p, PyObject *args,
                                       PyObject *kw) {
  static char *kwlist[] = {"flush", "interval", "live", "allow_remote",
                           "meta", NULL};
  PyObject *flush_obj = Py_None, *flush_bytes = NULL, *extra = NULL;
  const char *live = NULL;
  double interval = 1.0;
  int remote = 0, err;
  char errbuf[512];
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OdzpO:start_worker", kwlist,
                                   &flush_obj, &interval, &live, &remote,
                                   &extra))
    return NULL;
  if (p->worker != NULL || (worker_owner != NULL && worker_owner != p)) {
    PyErr_SetString(PyExc_RuntimeError, "a lineprof worker is already running");
    return NULL;
  }
  if (flush_obj == Py_None && live == NULL) {
    PyErr_SetString(PyExc_ValueError, "give flush=PATH, live=ADDR or both");
    return NULL;
  }
  if (!(interval >= 0.001 && interval <= 86400.0)) {
    PyErr_SetString(PyExc_ValueError,
                    "interval must be between 0.001 and 86400 seconds");
    return NULL;
  }
  if (flush_obj != Py_None && !PyUnicode_FSConverter(flush_obj, &flush_bytes))
    return NULL;
  worker_forget(p);
  if (build_meta(&p->w_meta, extra) != 0)
    goto fail;
  p->w_ms = (uint64_t)(interval * 1000.0 + 0.5);
  p->w_remote = remote;
  if ((flush_bytes != NULL &&
       (p->w_flush = lp__strdup(PyBytes_AS_STRING(flush_bytes))) == NULL) ||
      (live != NULL && (p->w_listen = lp__strdup(live)) == NULL)) {
    PyErr_NoMemory();
    goto fail;
  }
  errbuf[0] = '\0';
  if ((err = worker_launch(p, errbuf, sizeof(errbuf))) != 0) {
    if (err == LP_ENOMEM && errbuf[0] == '\0')
      PyErr_NoMemory();
    else
      PyErr_SetString(err == LP_EIO ? PyExc_OSError : PyExc_ValueError,
                      errbuf[0] ? errbuf : lp_strerror(err));
    goto fail;
  }
  Py_XDECREF(flush_bytes);
  return PyUnicode_FromString(lp_worker_address(p->worker));
fail:
  worker_forget(p);
  Py_XDECREF(flush_bytes);
  return NULL;
}

static PyObject *Profiler_stop_worker(lp_profiler_t *p, PyObject *unused) {
  (void)unused;
  worker_forget(p);
  Py_RETURN_NONE;
}

static PyObject *Profiler_worker_stats(lp_profiler_t *p, PyObject *unused) {
  lp_worker_stats_t st;
  (void)unused;
  if (p->worker == NULL)
    Py_RETURN_NONE;
  lp_worker_stats(p->worker, &st);
  return Py_BuildValue(
      "{s:K,s:K,s:i,s:K,s:K,s:K,s:K,s:K,s:K,s:s,s:z}", "flushes",
      (unsigned long long)st.flushes, "flush_errors",
      (unsigned long long)st.flush_errors, "flush_errno", st.flush_errno,
      "served", (unsigned long long)st.served, "rejected",
      (unsigned long long)st.rejected, "busy", (unsigned long long)st.busy,
      "snapshots", (unsigned long long)st.snapshots, "evicted",
      (unsigned long long)st.evicted, "expired",
      (unsigned long long)st.expired, "address", lp_worker_address(p->worker),
      "lost", st.lost ? st.lost_why : NULL);
}

/* fork(): the worker's thread does not survive into the child, and its
 * sockets must not either. It is stopped before, restarted in the parent
 * after (same address), and the child runs without one. */
static uint64_t fork_time; /* when the last fork() began */

static PyObject *before_fork(PyObject *mod, PyObject *unused) {
  lp_profiler_t *p = worker_owner;
  (void)mod;
  (void)unused;
  fork_time = lp_clock_now(NULL);
  if (p != NULL && p->worker != NULL) {
    worker_halt(p);
    p->w_forked = 1;
    worker_owner = p; /* remembered for the restart */
  }
  Py_RETURN_NONE;
}

static int restart_after_fork(void *unused) {
  lp_profiler_t *p = worker_owner;
  char errbuf[512];
  (void)unused;
  if (p != NULL && p->w_forked) {
    p->w_forked = 0;
    worker_owner = NULL;
    if (worker_launch(p, errbuf, sizeof(errbuf)) != 0)
      PySys_WriteStderr("lineprof: the worker did not restart after fork(): "
                        "%s\n", errbuf);
  }
  return 0;
}

/* Whether the calling thread is the main thread (threading's view). */
static int on_main_thread(void) {
  PyObject *th = PyImport_ImportModule("threading"), *cur = NULL, *main = NULL;
  int yes = 0;
  if (th != NULL && (cur = PyObject_CallMethod(th, "current_thread", NULL)) &&
      (main = PyObject_CallMethod(th, "main_thread", NULL)))
    yes = cur == main;
  PyErr_Clear();
  Py_XDECREF(th);
  Py_XDECREF(cur);
  Py_XDECREF(main);
  return yes;
}

/* In the parent, the worker restarts once os.fork() has returned, from the
 * main thread's next pending call: Python 3.13 counts the process's
 * threads after the after_in_parent handlers, and a thread started there
 * would make it warn about a multi-threaded fork that was not. A fork from
 * another thread is a multi-threaded one anyway: the worker restarts at
 * once. */
static PyObject *after_fork_parent(PyObject *mod, PyObject *unused) {
  lp_profiler_t *p = worker_owner;
  (void)mod;
  (void)unused;
  if (p != NULL && p->w_forked &&
      (!on_main_thread() || Py_AddPendingCall(restart_after_fork, NULL) != 0))
    restart_after_fork(NULL);
  Py_RETURN_NONE;
}

static PyObject *after_fork_child(PyObject *mod, PyObject *unused) {
  lp_profiler_t *p = worker_owner, *h = lp__hooked;
  (void)mod;
  (void)unused;
  /* Only the forking thread lives on in the child: the frames other threads
   * were running end at the fork, or they would be timed forever. */
  if (h != NULL) {
    uint64_t t = fork_time != 0 ? fork_time : lp_engine_now(&h->eng);
    lp_thread_t *th, *me = lp__tls.gen == h->gen ? lp__tls.th : NULL;
    LP_WRITE_BEGIN(h);
    for (th = h->eng.threads; th != NULL; th = th->next)
      if (th != me)
        lp_engine_detach_thread(&h->eng, th, t, release_user_cb);
    LP_WRITE_END(h);
  }
  if (p != NULL && p->w_forked) {
    p->w_forked = 0;
    lp__free(p->w_flush);
    lp__free(p->w_listen);
    p->w_flush = p->w_listen = NULL;
  }
  worker_owner = NULL;
  Py_RETURN_NONE;
}

static PyMethodDef Profiler_methods[] = {
    {"add_code", (PyCFunction)Profiler_add_code, METH_VARARGS,
     "add_code(code, kind, file, name, firstlineno, lastlineno)\n"
     "Register a code object for profiling."},
    {"enable", (PyCFunction)Profiler_enable, METH_NOARGS,
     "Install the hook. Raises RuntimeError if another profiler is enabled."},
    {"disable", (PyCFunction)Profiler_disable, METH_NOARGS,
     "Remove the hook; running frames stop being timed."},
    {"snapshot", (PyCFunction)Profiler_snapshot, METH_NOARGS,
     "Return the profile so far as a stats dict."},
    {"dump", (PyCFunction)(void (*)(void))Profiler_dump,
     METH_VARARGS | METH_KEYWORDS,
     "dump(path, meta=None)\nWrite the profile to path atomically."},
    {"clear", (PyCFunction)Profiler_clear_stats, METH_NOARGS,
     "Zero every counter."},
    {"start_worker", (PyCFunction)(void (*)(void))Profiler_start_worker,
     METH_VARARGS | METH_KEYWORDS,
     "start_worker(flush=None, interval=1.0, live=None, allow_remote=False, "
     "meta=None) -> str\nStart the native worker: a snapshot written to flush "
     "every interval seconds, and/or a live view served at live. Returns the "
     "address served (\"\" without live). Raises ValueError (bad address, "
     "non-loopback without allow_remote) or OSError (cannot listen)."},
    {"stop_worker", (PyCFunction)Profiler_stop_worker, METH_NOARGS,
     "Stop the worker, if any, and join its thread."},
    {"worker_stats", (PyCFunction)Profiler_worker_stats, METH_NOARGS,
     "The worker's counters as a dict, or None without a worker."},
    {"drop", (PyCFunction)Profiler_drop, METH_O,
     "drop(gen)\nEnd now the suspension of generator/coroutine gen, which "
     "was closed without running its frame. No-op if it is not suspended."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Profiler_getset[] = {
    {"enabled", (getter)Profiler_get_enabled, NULL, "True while hooked.", NULL},
    {"error", (getter)Profiler_get_error, NULL,
     "None, or why recording stopped.", NULL},
    {"_stack_depth", (getter)Profiler_get_stack_depth, NULL,
     "Running profiled frames on this thread (for tests).", NULL},
    {"_parked", (getter)Profiler_get_parked, NULL,
     "Suspended profiled frames (for tests).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject Profiler_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lineprof._lineprof.Profiler",
    .tp_basicsize = sizeof(lp_profiler_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A line-profiling engine. See docs/binding.md.",
    .tp_new = Profiler_new,
    .tp_dealloc = (destructor)Profiler_dealloc,
    .tp_traverse = (traverseproc)Profiler_traverse,
    .tp_clear = (inquiry)Profiler_clear,
    .tp_methods = Profiler_methods,
    .tp_getset = Profiler_getset,
};

/* ---- module functions ---- */

/* The NOW entries of a live snapshot: function index, line, thread, task id
 * (None for none) and elapsed nanoseconds. */
static PyObject *now_list(const lp_profile_t *prof) {
  PyObject *list = PyList_New(0);
  uint32_t i;
  for (i = 0; list != NULL && i < prof->nnow; i++) {
    const lp_now_t *n = &prof->now[i];
    PyObject *task = n->task ? PyLong_FromUnsignedLongLong(n->task)
                             : (Py_INCREF(Py_None), Py_None);
    PyObject *d = task == NULL ? NULL
                  : Py_BuildValue("{s:K,s:N,s:I,s:i,s:K}", "thread",
                                  (unsigned long long)n->thread, "task", task,
                                  "func", (unsigned)n->func, "lineno",
                                  (int)n->lineno, "elapsed",
                                  (unsigned long long)n->elapsed);
    if (d == NULL || PyList_Append(list, d) != 0)
      Py_CLEAR(list);
    Py_XDECREF(d);
  }
  return list;
}

/* Sets d["now"] from a snapshot's NOW section. Returns 0 or -1. */
static int add_now(PyObject *d, const lp_profile_t *prof) {
  PyObject *now = now_list(prof);
  int rc = now == NULL ? -1 : PyDict_SetItemString(d, "now", now);
  Py_XDECREF(now);
  return rc;
}

/* The stats dict of a profile read back (task times are stored relative
 * already), with "now" for a live snapshot. */
static PyObject *profile_dict(const lp_profile_t *prof) {
  task_list_t tl;
  PyObject *r;
  uint32_t i;
  tl.list = PyList_New(0);
  tl.t0 = 0;
  for (i = 0; tl.list != NULL && i < prof->ntasks; i++)
    append_task(&prof->tasks[i], &tl);
  r = stats_dict(&prof->table, &prof->meta, tl.list);
  if (r != NULL && prof->has_now && add_now(r, prof) != 0)
    Py_CLEAR(r);
  return r;
}

static PyObject *read_file(PyObject *mod, PyObject *path_obj) {
  PyObject *bytes = NULL, *r = NULL;
  lp_profile_t prof;
  int err;
  (void)mod;
  if (!PyUnicode_FSConverter(path_obj, &bytes))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  err = lp_file_read(PyBytes_AS_STRING(bytes), &prof);
  Py_END_ALLOW_THREADS
  if (err) {
    raise_lp(err, PyBytes_AS_STRING(bytes));
  } else {
    r = profile_dict(&prof);
  }
  lp_profile_close(&prof);
  Py_DECREF(bytes);
  return r;
}

static PyObject *parse_bytes(PyObject *mod, PyObject *arg) {
  Py_buffer view;
  PyObject *r = NULL;
  lp_profile_t prof;
  int err;
  (void)mod;
  if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0)
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  err = lp_file_parse(view.buf, (size_t)view.len, &prof);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  if (err) {
    raise_lp(err, NULL);
  } else {
    r = profile_dict(&prof);
  }
  lp_profile_close(&prof);
  return r;
}

static PyMethodDef before_fork_def = {"_before_fork", before_fork,
                                      METH_NOARGS, NULL};
static PyMethodDef after_fork_parent_def = {"_after_fork_parent",
                                            after_fork_parent, METH_NOARGS,
                                            NULL};
static PyMethodDef after_fork_child_def = {"_after_fork_child",
                                           after_fork_child, METH_NOARGS, NULL};

/* os.register_at_fork(before=..., after_in_parent=..., after_in_child=...) */
static int register_fork_handlers(PyObject *m) {
  PyObject *os = PyImport_ImportModule("os"), *reg = NULL, *kw = NULL,
           *empty = NULL, *r = NULL;
  PyObject *b = PyCFunction_New(&before_fork_def, m);
  PyObject *ap = PyCFunction_New(&after_fork_parent_def, m);
  PyObject *ac = PyCFunction_New(&after_fork_child_def, m);
  if (os != NULL && b != NULL && ap != NULL && ac != NULL &&
      (reg = PyObject_GetAttrString(os, "register_at_fork")) != NULL &&
      (empty = PyTuple_New(0)) != NULL &&
      (kw = Py_BuildValue("{s:O,s:O,s:O}", "before", b, "after_in_parent", ap,
                          "after_in_child", ac)) != NULL)
    r = PyObject_Call(reg, empty, kw);
  Py_XDECREF(os);
  Py_XDECREF(reg);
  Py_XDECREF(kw);
  Py_XDECREF(empty);
  Py_XDECREF(b);
  Py_XDECREF(ap);
  Py_XDECREF(ac);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}

/* atexit: a hook left installed by a disabled profiler (enable()/disable()
 * keep it, see lp__hooked) is removed before the interpreter finalizes, so
 * no teardown runs into a half-cleared sys module. */
static PyObject *at_exit(PyObject *mod, PyObject *unused) {
  (void)mod;
  (void)unused;
  if (lp__hooked != NULL && !lp__hooked->enabled)
    unhook(lp__hooked);
  Py_RETURN_NONE;
}

static PyMethodDef at_exit_def = {"_at_exit", at_exit, METH_NOARGS, NULL};

static int register_at_exit(PyObject *m) {
  PyObject *atexit = PyImport_ImportModule("atexit"), *fn = NULL, *r = NULL;
  if (atexit != NULL && (fn = PyCFunction_New(&at_exit_def, m)) != NULL)
    r = PyObject_CallMethod(atexit, "register", "O", fn);
  Py_XDECREF(atexit);
  Py_XDECREF(fn);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}

/* ---- allocation failure injection (tests only) ---- */

static long alloc_budget = -1; /* allocations left before failing; -1: off */

static void *failing_realloc(void *ptr, size_t size) {
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  if (alloc_budget == 0)
    return NULL;
  if (alloc_budget > 0)
    alloc_budget--;
  return realloc(ptr, size);
}

/* _fail_allocations(n): the core's allocations fail after n more succeed
 * (n < 0 restores the C library's). Not thread-safe: no worker may run. */
static PyObject *fail_allocations(PyObject *mod, PyObject *arg) {
  long n = PyLong_AsLong(arg);
  (void)mod;
  if (n == -1 && PyErr_Occurred())
    return NULL;
  alloc_budget = n < 0 ? -1 : n;
  lp_set_allocator(n < 0 ? NULL : failing_realloc);
  Py_RETURN_NONE;
}

static PyObject *parse_address(PyObject *mod, PyObject *arg) {
  lp_addr_t a;
  const char *text;
  char buf[LP_ADDR_PATH_MAX + 8];
  (void)mod;
  if ((text = PyUnicode_AsUTF8(arg)) == NULL)
    return NULL;
  if (lp_addr_parse(text, &a) != 0) {
    PyErr_Format(PyExc_ValueError,
                 "bad address %R: use HOST:PORT, PORT or unix:PATH", arg);
    return NULL;
  }
  lp_addr_format(&a, buf, sizeof(buf));
  if (a.is_unix)
    return Py_BuildValue("{s:s,s:s,s:O,s:s}", "family", "unix", "path", a.path,
                         "local", Py_True, "text", buf);
  return Py_BuildValue("{s:s,s:s,s:i,s:O,s:s}", "family",
                       strchr(a.host, ':') ? "inet6" : "inet", "host", a.host,
                       "port", a.port, "local",
                       lp_addr_is_local(&a) ? Py_True : Py_False, "text", buf);
}

/* clock(): which clock the profilers read (lp_clock.h). */
static PyObject *clock_name(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  lp_clock_tsc_finish(TSC_CALIBRATION_NS);
  return PyUnicode_FromString(lp__tsc.mult != 0 ? "tsc" : "monotonic");
}

static PyMethodDef module_methods[] = {
    {"clock", clock_name, METH_NOARGS,
     "clock() -> str\n\"tsc\" (the time stamp counter, where the kernel keeps "
     "CLOCK_MONOTONIC on it) or \"monotonic\" (clock_gettime). "
     "LINEPROF_TSC=0 in the environment at import forces \"monotonic\"."},
    {"_fail_allocations", fail_allocations, METH_O,
     "_fail_allocations(n)\nFor tests: the core's allocations fail after n "
     "more succeed; n < 0 restores them."},
    {"parse_address", parse_address, METH_O,
     "parse_address(text) -> dict\nParse a live view address as the worker "
     "does. Raises ValueError."},
    {"parse", parse_bytes, METH_O,
     "parse(data) -> dict\nParse a .lprof file's bytes (a live snapshot adds "
     "a \"now\" list). Raises FormatError."},
    {"read_file", read_file, METH_O,
     "read_file(path) -> dict\nRead a .lprof file. Raises FormatError or "
     "OSError."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "lineprof._lineprof",
    "The C core of lineprof. See docs/binding.md.", -1, module_methods,
    NULL, NULL, NULL, NULL};

/* Built with -fvisibility=hidden: before 3.9, PyMODINIT_FUNC does not mark
 * the init function for export, so it is marked here. */
#if defined(__GNUC__) && PY_VERSION_HEX < 0x03090000
__attribute__((visibility("default")))
#endif
PyMODINIT_FUNC PyInit__lineprof(void) {
  PyObject *m;
  if (PyType_Ready(&Profiler_Type) < 0)
    return NULL;
  m = PyModule_Create(&moduledef);
  if (m == NULL)
    return NULL;
  {
    const char *tsc = getenv("LINEPROF_TSC");
    lp_clock_tsc_start(tsc == NULL || strcmp(tsc, "0") != 0);
  }
  if ((str_asyncio = PyUnicode_InternFromString("asyncio")) == NULL ||
      (str_get_name = PyUnicode_InternFromString("get_name")) == NULL ||
      (str_get_coro = PyUnicode_InternFromString("get_coro")) == NULL ||
      (str_qualname = PyUnicode_InternFromString("__qualname__")) == NULL) {
    Py_DECREF(m);
    return NULL;
  }
  FormatError = PyErr_NewExceptionWithDoc(
      "lineprof._lineprof.FormatError",
      "The file is not a valid lineprof profile.", PyExc_ValueError, NULL);
  Py_INCREF(&Profiler_Type);
  if (FormatError == NULL ||
      PyModule_AddObject(m, "Profiler", (PyObject *)&Profiler_Type) < 0 ||
      PyModule_AddObject(m, "FormatError", FormatError) < 0 ||
      PyModule_AddStringConstant(m, "BACKEND", LP_BACKEND_NAME) < 0 ||
      PyModule_AddObject(m, "UNIT", PyFloat_FromDouble(1e-9)) < 0 ||
      PyModule_AddIntConstant(m, "KIND_FUNCTION", LP_KIND_FUNCTION) < 0 ||
      PyModule_AddIntConstant(m, "KIND_GENERATOR", LP_KIND_GENERATOR) < 0 ||
      PyModule_AddIntConstant(m, "KIND_COROUTINE", LP_KIND_COROUTINE) < 0 ||
      PyModule_AddIntConstant(m, "KIND_ASYNC_GENERATOR",
                              LP_KIND_ASYNC_GENERATOR) < 0 ||
      register_fork_handlers(m) < 0 || register_at_exit(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  Py_INCREF(FormatError);
  return m;
}
