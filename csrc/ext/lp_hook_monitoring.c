/* lp_hook_monitoring.c - the sys.monitoring backend (CPython 3.12+).
 * Callbacks are METH_FASTCALL C functions bound to the profiler, under a
 * tool id of our own. LINE, JUMP, PY_START, PY_RESUME, PY_YIELD and
 * PY_RETURN are local events, set only on profiled code objects; PY_UNWIND
 * and PY_THROW can only be global, and return at once for code that is not
 * ours. JUMP is there to count what sys.settrace counts as a line event
 * and LINE does not: a backward jump within one line (an inlined
 * comprehension's loop, a one-line while loop). Every other jump
 * instruction is disabled for our tool the first time it fires. */
#include "lp_ext.h"

#ifdef LP_BACKEND_MONITORING

#define LOCAL_EVENTS                                                         \
  "PY_START", "PY_RESUME", "PY_YIELD", "PY_RETURN", "LINE", "JUMP"
#define NLOCAL 6
#define GLOBAL_EVENTS "PY_UNWIND", "PY_THROW"

/* Returns the generator (borrowed) whose frame runs code now, or NULL.
 * Reads the thread's current interpreter frame from the public
 * PyThreadState struct rather than calling PyEval_GetFrame, which would
 * create a frame object for every profiled generator. The frame is checked
 * to run code, a generator's code: such a frame only ever runs inside its
 * generator object (gi_iframe, in the head that generators, coroutines and
 * async generators share). */
static PyObject *gen_of_current_frame(PyObject *code) {
  PyThreadState *ts = PyThreadState_GET();
  struct _PyInterpreterFrame *f;
  PyObject *c, *gen;
#if PY_VERSION_HEX >= 0x030D0000
  f = ts->current_frame;
#else
  f = ts->cframe->current_frame;
#endif
  if (f == NULL ||
      !(((PyCodeObject *)code)->co_flags &
        (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)))
    return NULL;
  c = PyUnstable_InterpreterFrame_GetCode(f);
  Py_DECREF(c); /* the frame holds it */
  if (c != code)
    return NULL;
  gen = (PyObject *)((char *)f - offsetof(PyGenObject, gi_iframe));
  if (!PyGen_CheckExact(gen) && !PyCoro_CheckExact(gen) &&
      !PyAsyncGen_CheckExact(gen))
    return NULL;
  return gen;
}

/* Each callback starts like this: the change to the engine begins
 * (lp_sync.h), then the time is read (so a snapshot never settles past
 * it), then the thread. Every return after that goes through LEAVE. */
#define ENTER(p, th, t)                                                      \
  lp_profiler_t *p = lp__hooked;                                             \
  lp_thread_t *th;                                                           \
  uint64_t t;                                                                \
  uint64_t outer_;                                                           \
  (void)self;                                                                \
  if (LP_UNLIKELY(p == NULL || !p->recording))                               \
    Py_RETURN_NONE;                                                          \
  outer_ = lp_sync_write_begin(&p->eng.sync);                               \
  t = LP_NOW(p);                                                             \
  if (LP_UNLIKELY((th = lp__thread(p)) == NULL))                             \
    LEAVE(Py_None);

/* Py_None is immortal on 3.12+ (this backend's versions): returned without
 * a reference, as Py_RETURN_NONE does there. */
#define LEAVE(r)                                                             \
  do {                                                                       \
    lp_sync_write_end(&p->eng.sync, outer_);                                 \
    return (r);                                                              \
  } while (0)

/* LINE (code, line) in any case: a frame to adopt, a nested change, a
 * line array to grow, an unusual argument, no TSC. */
static LP_NOINLINE PyObject *cb_line_any(PyObject *self,
                                          PyObject *const *args,
                                          Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_frame_t *top = lp_engine_top(th);
  int32_t lineno = (int32_t)lp_compat_small_int(args[1]);
  int err;
  (void)nargs;
  if (LP_UNLIKELY(top == NULL || top->ident != (uintptr_t)args[0])) {
    /* Running since before enable(): adopt it. */
    lp_func_t *f = lp_table_find(&p->eng.table, (uintptr_t)args[0]);
    if (f == NULL)
      LEAVE(Py_None);
    if ((err = lp_engine_start(&p->eng, th, f, (uintptr_t)args[0], t)) != 0) {
      lp__fail(p, err, "line");
      LEAVE(Py_None);
    }
    lp__attach_task(p, th, t);
    top = lp_engine_top(th);
  }
  if (LP_UNLIKELY((err = lp_engine_line(&p->eng, top, lineno, t)) != 0))
    lp__fail(p, err, "line");
  LEAVE(Py_None);
}

#ifdef LP_HAVE_TSC
/* LINE with the TSC clock (registered instead of cb_line_any when it is in
 * use): the frame on top of this thread's stack runs the next line of a
 * line array it already has. Everything is checked before the change
 * begins; anything else goes to cb_line_any. No call on this path. */
static PyObject *cb_line(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs) {
  lp_profiler_t *p = lp__hooked;
  lp_thread_t *th;
  lp_frame_t *top;
  lp_line_t *ln;
  uint64_t q, t;
  int32_t lineno;
  if (LP_UNLIKELY(p == NULL))
    Py_RETURN_NONE;
  q = __atomic_load_n(&p->eng.sync.seq, __ATOMIC_RELAXED);
  th = lp__tls.th;
  if (LP_UNLIKELY(lp__tls.gen != p->recording || (q & 1) != 0 ||
                  (top = th->top) == NULL ||
                  top->ident != (uintptr_t)args[0] ||
                  !lp_compat_line_arg(args[1], &lineno) ||
                  !lp_func_covers(top->func, lineno)))
    return cb_line_any(self, args, nargs);
  ln = &top->func->lines[lineno - top->func->base];
  lp_sync_write_open(&p->eng.sync, q);
  t = lp_clock_tsc();
  lp__engine_line_at(top, ln, lineno, t);
  lp_sync_write_end(&p->eng.sync, q);
  Py_RETURN_NONE;
}
#endif

/* JUMP (code, from, to): a line event when jumping back within one line.
 * Same-line backward jumps are cached by the address of their instruction,
 * which lies inside the code object itself on 3.12+ and so is unique. */
static PyObject *cb_jump(PyObject *self, PyObject *const *args,
                         Py_ssize_t nargs) {
  ENTER(p, th, t)
  long from = lp_compat_small_int(args[1]), to = lp_compat_small_int(args[2]);
  uintptr_t key = (uintptr_t)args[0] + (uintptr_t)from + 1, line;
  lp_frame_t *top;
  int err;
  (void)nargs;
  if (!lp_map_get(&p->jump_lines, key, &line)) {
    int from_line, to_line;
    if (to > from)
      LEAVE(Py_NewRef(p->disable));
    from_line = PyCode_Addr2Line((PyCodeObject *)args[0], (int)from);
    to_line = PyCode_Addr2Line((PyCodeObject *)args[0], (int)to);
    if (from_line != to_line || to_line <= 0)
      LEAVE(Py_NewRef(p->disable)); /* LINE sees the target's line */
    line = (uintptr_t)to_line;
    lp_map_put(&p->jump_lines, key, line); /* a cache: failure is harmless */
  }
  top = lp_engine_top(th);
  if (top != NULL && top->ident == (uintptr_t)args[0] &&
      (err = lp_engine_line(&p->eng, top, (int32_t)line, t)) != 0)
    lp__fail(p, err, "line");
  LEAVE(Py_None);
}

static PyObject *cb_start(PyObject *self, PyObject *const *args,
                          Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_func_t *f = lp_table_find(&p->eng.table, (uintptr_t)args[0]);
  int err;
  (void)nargs;
  if (f == NULL)
    LEAVE(Py_None);
  if ((err = lp_engine_start(&p->eng, th, f, (uintptr_t)args[0], t)) != 0)
    lp__fail(p, err, "start");
  else
    lp__attach_task(p, th, t);
  LEAVE(Py_None);
}

/* PY_RESUME and PY_THROW: a generator frame continues. */
static PyObject *cb_resume(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_func_t *f = lp_table_find(&p->eng.table, (uintptr_t)args[0]);
  PyObject *gen;
  uintptr_t slot;
  int32_t lineno = 0;
  int err;
  (void)nargs;
  if (f == NULL || f->kind == LP_KIND_FUNCTION ||
      (gen = gen_of_current_frame(args[0])) == NULL)
    LEAVE(Py_None);
  LP_REFRESH_NAMES(p);
  if (!lp_map_get(&p->eng.parked, (uintptr_t)gen, &slot)) {
    int off = (int)lp_compat_small_int(args[1]);
    lineno = PyCode_Addr2Line((PyCodeObject *)args[0], off);
    PyErr_Clear();
  }
  err = lp_engine_resume(&p->eng, th, (uintptr_t)gen, f, (uintptr_t)args[0],
                         lineno, t);
  if (err < 0)
    lp__fail(p, err, "resume");
  else if (err == 0)
    lp__attach_task(p, th, t); /* adopted */
  LEAVE(Py_None);
}

static PyObject *cb_yield(PyObject *self, PyObject *const *args,
                          Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_frame_t *top = lp_engine_top(th);
  PyObject *gen;
  uintptr_t user;
  int err;
  (void)nargs;
  if (top == NULL || top->ident != (uintptr_t)args[0] ||
      (gen = gen_of_current_frame(args[0])) == NULL)
    LEAVE(Py_None);
  if (lp__watch_gen(p, top, gen) != 0)
    LEAVE(Py_None);
  LP_REFRESH_NAMES(p);
  err = lp_engine_yield(&p->eng, th, (uintptr_t)gen, t, &user);
  lp__release_user(p, user);
  if (err)
    lp__fail(p, err, "yield");
  LEAVE(Py_None);
}

static PyObject *cb_return(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_frame_t *top = lp_engine_top(th);
  (void)nargs;
  if (top != NULL && top->ident == (uintptr_t)args[0])
    lp__release_user(p, lp_engine_return(&p->eng, th, t));
  LEAVE(Py_None);
}

static PyObject *cb_unwind(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs) {
  ENTER(p, th, t)
  lp_frame_t *top = lp_engine_top(th);
  (void)nargs;
  if (top != NULL && top->ident == (uintptr_t)args[0])
    lp__release_user(p, lp_engine_unwind(&p->eng, th, t));
  LEAVE(Py_None);
}

typedef struct {
  const char *event;
  PyMethodDef def;
} callback_t;

#define CB(ev, fn)                                                           \
  { ev, { "_" ev, (PyCFunction)(void (*)(void))fn, METH_FASTCALL, NULL } }

static callback_t callbacks[] = {
    CB("PY_START", cb_start),   CB("PY_RESUME", cb_resume),
    CB("PY_THROW", cb_resume),  CB("PY_YIELD", cb_yield),
    CB("PY_RETURN", cb_return), CB("PY_UNWIND", cb_unwind),
    CB("LINE", cb_line_any),    CB("JUMP", cb_jump),
};

#ifdef LP_HAVE_TSC
static PyMethodDef line_tsc_def = {
    "_LINE", (PyCFunction)(void (*)(void))cb_line, METH_FASTCALL, NULL};
#endif

#define NCALLBACKS (sizeof(callbacks) / sizeof(callbacks[0]))

/* The event bits, read once from sys.monitoring.events (constants of the
 * running CPython), and the masks made of them. */
static long bits[NCALLBACKS];
static long local_mask, global_mask;
static int bits_ready;

static const char *const local_names[] = {LOCAL_EVENTS};
static const char *const global_names[] = {GLOBAL_EVENTS};

/* Returns the bit of events.NAME, or -1 with an exception. */
static long event_bit(PyObject *events, const char *name) {
  PyObject *v = PyObject_GetAttrString(events, name);
  long bit;
  if (v == NULL)
    return -1;
  bit = PyLong_AsLong(v);
  Py_DECREF(v);
  return bit;
}

static long event_mask(PyObject *events, const char *const *names, size_t n) {
  long mask = 0, bit;
  size_t i;
  for (i = 0; i < n; i++) {
    if ((bit = event_bit(events, names[i])) < 0)
      return -1;
    mask |= bit;
  }
  return mask;
}

static int read_bits(PyObject *mon) {
  PyObject *events;
  size_t i;
  if (bits_ready)
    return 0;
  if ((events = PyObject_GetAttrString(mon, "events")) == NULL)
    return -1;
  for (i = 0; i < NCALLBACKS; i++)
    if ((bits[i] = event_bit(events, callbacks[i].event)) < 0)
      goto fail;
  if ((local_mask = event_mask(events, local_names, NLOCAL)) < 0 ||
      (global_mask = event_mask(events, global_names, 2)) < 0)
    goto fail;
  Py_DECREF(events);
  bits_ready = 1;
  return 0;
fail:
  Py_DECREF(events);
  return -1;
}

/* Calls fn(*Py_BuildValue(fmt, ...)); 0, or -1 with an exception. */
static int call(PyObject *fn, const char *fmt, ...) {
  va_list va;
  PyObject *args, *r;
  va_start(va, fmt);
  args = Py_VaBuildValue(fmt, va);
  va_end(va);
  if (args == NULL)
    return -1;
  r = PyObject_CallObject(fn, args);
  Py_DECREF(args);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}

static int set_local(lp_profiler_t *p, PyObject *code, long mask) {
  return call(p->mon[LP_MON_SET_LOCAL_EVENTS], "(iOl)", p->tool_id, code,
              mask);
}

void lp__hook_resume(lp_profiler_t *p) { (void)p; }
void lp__hook_pause(lp_profiler_t *p) { (void)p; }

int lp__hook_add_code(lp_profiler_t *p, PyObject *code) {
  return set_local(p, code, local_mask);
}

/* What teardown calls, held from install on: at interpreter shutdown the
 * sys.monitoring module may already be cleared, and no attribute of it
 * can be looked up then. */
static const char *const mon_names[LP_MON_COUNT] = {
    "set_events", "set_local_events", "register_callback", "free_tool_id"};

int lp__hook_install(lp_profiler_t *p) {
  static const int candidates[] = {4, 3, 5, 1, 0};
  PyObject *sys = PyImport_ImportModule("sys"), *mon, *use_tool_id;
  size_t i;
  Py_ssize_t j;
  int rc;
  if (sys == NULL)
    return -1;
  mon = PyObject_GetAttrString(sys, "monitoring");
  Py_DECREF(sys);
  if (mon == NULL)
    return -1;
  p->tool_id = -1;
  for (i = 0; i < LP_MON_COUNT; i++)
    if ((p->mon[i] = PyObject_GetAttrString(mon, mon_names[i])) == NULL)
      goto fail;
  if (read_bits(mon) != 0 ||
      (p->disable = PyObject_GetAttrString(mon, "DISABLE")) == NULL ||
      (use_tool_id = PyObject_GetAttrString(mon, "use_tool_id")) == NULL)
    goto fail;
  for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
    if (call(use_tool_id, "(is)", candidates[i], "lineprof") == 0) {
      p->tool_id = candidates[i];
      break;
    }
    PyErr_Clear();
  }
  Py_DECREF(use_tool_id);
  if (p->tool_id < 0) {
    PyErr_SetString(PyExc_RuntimeError,
                    "lineprof: no free sys.monitoring tool id");
    goto fail;
  }
  for (i = 0; i < NCALLBACKS; i++) {
    PyMethodDef *def = &callbacks[i].def;
    PyObject *fn;
#ifdef LP_HAVE_TSC
    if (def->ml_meth == (PyCFunction)(void (*)(void))cb_line_any &&
        lp__tsc.mult != 0)
      def = &line_tsc_def;
#endif
    if ((fn = PyCFunction_New(def, NULL)) == NULL)
      goto fail;
    rc = call(p->mon[LP_MON_REGISTER_CALLBACK], "(ilO)", p->tool_id, bits[i],
              fn);
    Py_DECREF(fn);
    if (rc != 0)
      goto fail;
  }
  if (call(p->mon[LP_MON_SET_EVENTS], "(il)", p->tool_id, global_mask) != 0)
    goto fail;
  for (j = 0; j < PyList_GET_SIZE(p->codes); j++)
    if (set_local(p, PyList_GET_ITEM(p->codes, j), local_mask) != 0)
      goto fail;
  Py_DECREF(mon);
  return 0;
fail:
  Py_DECREF(mon);
  {
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    lp__hook_remove(p);
    PyErr_Restore(exc_type, exc, tb);
  }
  return -1;
}

int lp__hook_remove(lp_profiler_t *p) {
  size_t i;
  Py_ssize_t j;
  /* While the interpreter finalizes, the tool is left to it: the callbacks
   * find no hooked profiler and return at once. */
  if (p->tool_id >= 0 && !LP_IS_FINALIZING()) {
    PyObject *exc_type, *exc, *tb;
    PyErr_Fetch(&exc_type, &exc, &tb);
    if (call(p->mon[LP_MON_SET_EVENTS], "(ii)", p->tool_id, 0) != 0)
      PyErr_Clear();
    for (j = 0; p->codes != NULL && j < PyList_GET_SIZE(p->codes); j++)
      if (set_local(p, PyList_GET_ITEM(p->codes, j), 0) != 0)
        PyErr_Clear();
    for (i = 0; i < NCALLBACKS; i++)
      if (call(p->mon[LP_MON_REGISTER_CALLBACK], "(ilO)", p->tool_id, bits[i],
               Py_None) != 0)
        PyErr_Clear();
    if (call(p->mon[LP_MON_FREE_TOOL_ID], "(i)", p->tool_id) != 0)
      PyErr_Clear();
    PyErr_Restore(exc_type, exc, tb);
  }
  p->tool_id = -1;
  for (i = 0; i < LP_MON_COUNT; i++)
    Py_CLEAR(p->mon[i]);
  Py_CLEAR(p->disable);
  lp_map_close(&p->jump_lines);
  return 0;
}

#endif /* LP_BACKEND_MONITORING */
