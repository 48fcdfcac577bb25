/* lp_hook_settrace.c - the legacy backend (CPython 3.8-3.11): a C trace
 * function installed with PyEval_SetTrace. Frames of code that is not
 * profiled get f_trace_lines turned off at their call event, so they send
 * no line events.
 *
 * A trace function puts all code of its thread in CPython's slow tracing
 * mode. On 3.11, where lp_evalframe.h can say when a profiled frame starts
 * or resumes, the trace function is installed on a thread only then and
 * removed when the thread's last profiled frame returns or suspends
 * ("lazy"). Otherwise (3.8-3.10, or another PEP 523 user holds the slot)
 * it stays installed while recording, and threads started through
 * threading after enable() install it from threading.settrace's first
 * call. */
#include "lp_ext.h"
#include "lp_evalframe.h"

#ifdef LP_BACKEND_SETTRACE

static void untrace_this_thread(void);
static int trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
static int lazy; /* the frame evaluation function is ours */
/* This thread was armed for profiled frames that ran before recording
 * began: until none is left, the trace stays when the last frame we know
 * of leaves. */
static _Thread_local int adopting;
static int profiled_frame_running(lp_profiler_t *p, PyFrameObject *f);

static lp_func_t *func_of(lp_profiler_t *p, PyFrameObject *frame) {
  PyCodeObject *code = PyFrame_GetCode(frame);
  lp_func_t *f = lp_table_find(&p->eng.table, (uintptr_t)code);
  Py_DECREF(code);
  return f;
}

static void lines_off(lp_profiler_t *p, PyFrameObject *frame) {
  if (lp_compat_no_line_events(frame) != 0)
    lp__fail(p, LP_EINVAL, "turning off line events");
}

/* A generator frame of f runs at t: unparks its record if it was suspended
 * (key: its generator), else adopts it as a new frame with no line yet.
 * Returns 1 (unparked), 0 (adopted) or a negative error (recorded). */
static int resume_gen(lp_profiler_t *p, lp_thread_t *th, lp_func_t *f,
                      PyFrameObject *frame, uint64_t t) {
  PyObject *gen = lp_compat_frame_gen(frame);
  uintptr_t key = gen != NULL ? (uintptr_t)gen : (uintptr_t)frame;
  int err;
  LP_REFRESH_NAMES(p);
  err = lp_engine_resume(&p->eng, th, key, f, (uintptr_t)frame, 0, t);
  if (err < 0)
    lp__fail(p, err, "resume");
  return err;
}

static void on_call(lp_profiler_t *p, lp_thread_t *th, PyFrameObject *frame) {
  lp_func_t *f = func_of(p, frame);
  uint64_t t = LP_NOW(p);
  int err;
  if (f == NULL) {
    lines_off(p, frame);
    return;
  }
  if (f->kind != LP_KIND_FUNCTION) {
    if (resume_gen(p, th, f, frame, t) == 0) {
      /* A new frame, or one suspended since before its code was added, whose
       * line events we switched off then. */
      if (lp_compat_line_events_on(frame) != 0)
        lp__fail(p, LP_EINVAL, "turning on line events");
      lp__attach_task(p, th, t);
    }
    return;
  }
  if ((err = lp_engine_start(&p->eng, th, f, (uintptr_t)frame, t)) != 0)
    lp__fail(p, err, "call");
  else
    lp__attach_task(p, th, t);
}

static void on_return(lp_profiler_t *p, lp_thread_t *th, lp_frame_t *top,
                      PyFrameObject *frame, PyObject *arg) {
  uint64_t t = LP_NOW(p);
  uintptr_t user;
  if (top->func->kind != LP_KIND_FUNCTION && arg != NULL) {
    PyObject *gen = lp_compat_frame_gen(frame);
    if (lp_compat_frame_suspended(frame, gen)) {
      int err;
      if (gen != NULL && lp__watch_gen(p, top, gen) != 0)
        return;
      LP_REFRESH_NAMES(p);
      err = lp_engine_yield(&p->eng, th,
                            gen != NULL ? (uintptr_t)gen : (uintptr_t)frame, t,
                            &user);
      lp__release_user(p, user);
      if (err)
        lp__fail(p, err, "yield");
      return;
    }
  }
  user = arg == NULL ? lp_engine_unwind(&p->eng, th, t)
                     : lp_engine_return(&p->eng, th, t);
  lp__release_user(p, user);
}

/* CPython 3.11 resumes a suspended generator frame WITHOUT a call event
 * when throw() reaches it through `yield from`/`await` and the awaitee
 * returns instead of raising (asyncio: a task cancelled in wait_for() after
 * the inner future completed; wait_for returns its result): _gen_throw then
 * jumps past the SEND loop and continues the frame with gen_send(), skipping
 * the RESUME instruction that sends 'call' in 3.11. The frame's record is
 * still parked; its first event is a line, a yield or a return, none of
 * which finds it on top of the stack. Such an event resumes it here. */

/* A line event from a frame that is not the top of our stack: either not
 * profiled (switch its line events off), or a generator frame resumed
 * without a call event (see above: unpark it), or profiled and already
 * running when profiling was enabled (adopt it). */
static void on_foreign_line(lp_profiler_t *p, lp_thread_t *th,
                            PyFrameObject *frame) {
  lp_func_t *f = func_of(p, frame);
  uint64_t t;
  int err;
  if (f == NULL) {
    lines_off(p, frame);
    return;
  }
  t = LP_NOW(p);
  if (f->kind != LP_KIND_FUNCTION) {
    if ((err = resume_gen(p, th, f, frame, t)) < 0)
      return;
  } else if ((err = lp_engine_start(&p->eng, th, f, (uintptr_t)frame, t)) !=
             0) {
    lp__fail(p, err, "line");
    return;
  }
  if (err == 0)
    lp__attach_task(p, th, t); /* adopted: a new record */
  if ((err = lp_engine_line(&p->eng, lp_engine_top(th),
                            PyFrame_GetLineNumber(frame), t)) != 0)
    lp__fail(p, err, "line");
}

/* A return event (return, yield or unwind) from a frame that is not the top
 * of our stack. If it is a generator frame whose record is parked, it was
 * resumed without a call event (see above) and ran no new line: resume it
 * now, then account the event. Anything else is not ours. */
static void on_foreign_return(lp_profiler_t *p, lp_thread_t *th,
                              PyFrameObject *frame, PyObject *arg) {
  PyObject *gen = lp_compat_frame_gen(frame);
  uintptr_t v;
  lp_func_t *f;
  if (gen == NULL || !lp_map_get(&p->eng.parked, (uintptr_t)gen, &v))
    return;
  f = p->eng.pool[v].func;
  if (resume_gen(p, th, f, frame, LP_NOW(p)) == 1)
    on_return(p, th, lp_engine_top(th), frame, arg);
}

static int trace(PyObject *obj, PyFrameObject *frame, int what,
                 PyObject *arg) {
  lp_profiler_t *p = (lp_profiler_t *)obj;
  lp_thread_t *th;
  lp_frame_t *top;
  uint64_t outer;
  if (LP_UNLIKELY(!p->recording)) {
    if (!p->enabled || lp__hooked != p)
      untrace_this_thread(); /* a thread still hooked after disable */
    return 0;
  }
  if (LP_UNLIKELY((th = lp__thread(p)) == NULL))
    return 0;
  top = lp_engine_top(th);
  outer = lp_sync_write_begin(&p->eng.sync);
  switch (what) {
  case PyTrace_LINE:
    if (LP_LIKELY(top != NULL && top->ident == (uintptr_t)frame)) {
      int err = lp_engine_line(&p->eng, top, PyFrame_GetLineNumber(frame),
                               LP_NOW(p));
      if (LP_UNLIKELY(err))
        lp__fail(p, err, "line");
    } else {
      on_foreign_line(p, th, frame);
    }
    break;
  case PyTrace_CALL:
    on_call(p, th, frame);
    break;
  case PyTrace_RETURN:
    if (top != NULL && top->ident == (uintptr_t)frame)
      on_return(p, th, top, frame, arg);
    else if (p->eng.nparked != 0)
      on_foreign_return(p, th, frame, arg);
    else
      break;
    if (lazy && th->top == NULL) {
      PyFrameObject *back = adopting ? PyFrame_GetBack(frame) : NULL;
      adopting = back != NULL && profiled_frame_running(p, back);
      Py_XDECREF(back);
      if (!adopting)
        untrace_this_thread(); /* the last profiled frame left */
    }
    break;
  default:
    break;
  }
  lp_sync_write_end(&p->eng.sync, outer);
  return 0;
}

/* lp_eval_cb: a frame of profiled code starts or resumes on this thread.
 * A trace function of someone else's is left alone. */
static void arm(PyThreadState *ts) {
  lp_profiler_t *p = lp__hooked;
  PyObject *type, *value, *tb;
  if (p == NULL || !p->recording || ts->c_tracefunc != NULL)
    return;
  PyErr_Fetch(&type, &value, &tb);
  PyEval_SetTrace(trace, (PyObject *)p);
  PyErr_Restore(type, value, tb);
}

/* Whether f or a frame below it runs code that p profiles. */
static int profiled_frame_running(lp_profiler_t *p, PyFrameObject *f) {
  int found = 0;
  Py_XINCREF(f);
  while (f != NULL && !found) {
    PyFrameObject *back = PyFrame_GetBack(f);
    found = func_of(p, f) != NULL;
    Py_DECREF(f);
    f = back;
  }
  Py_XDECREF(f);
  return found;
}

/* threading.settrace hook: runs once at the start of each new thread (at
 * its first call event, through sys.settrace's trampoline). */
static PyObject *thread_bootstrap(PyObject *self, PyObject *args) {
  lp_profiler_t *p = lp__hooked;
  PyObject *frame, *event, *arg;
  (void)self;
  if (!PyArg_ParseTuple(args, "OOO", &frame, &event, &arg))
    return NULL;
  if (p != NULL && p->enabled && PyFrame_Check(frame)) {
    if (lazy) {
      /* This thread is armed at its profiled frames, not now (unless this
       * first frame is one): take sys.settrace's trampoline off. */
      PyEval_SetTrace(NULL, NULL);
      if (func_of(p, (PyFrameObject *)frame) == NULL)
        Py_RETURN_NONE;
    }
    PyEval_SetTrace(trace, (PyObject *)p);
    trace((PyObject *)p, (PyFrameObject *)frame, PyTrace_CALL, Py_None);
  }
  Py_RETURN_NONE;
}

static PyMethodDef bootstrap_def = {"_thread_bootstrap", thread_bootstrap,
                                    METH_VARARGS, NULL};
static PyObject *bootstrap; /* what we gave threading.settrace */

/* Removes our trace function from the calling thread, and only ours: a
 * debugger or coverage tool set since then keeps its own. */
static void untrace_this_thread(void) {
  PyThreadState *ts = PyThreadState_Get();
  if (ts->c_tracefunc == trace)
    PyEval_SetTrace(NULL, NULL);
}

static PyObject *str_threading(void) {
  static PyObject *s;
  if (s == NULL)
    s = PyUnicode_InternFromString("threading");
  return s;
}

static int threading_settrace(PyObject *fn) {
  PyObject *threading = PyImport_ImportModule("threading"), *r;
  if (threading == NULL)
    return -1;
  r = PyObject_CallMethod(threading, "settrace", "O", fn);
  Py_DECREF(threading);
  Py_XDECREF(r);
  return r == NULL ? -1 : 0;
}

static int mark_all(lp_profiler_t *p, int on) {
  Py_ssize_t i;
  for (i = 0; i < PyList_GET_SIZE(p->codes); i++)
    if (lp_eval_mark(PyList_GET_ITEM(p->codes, i), on) != 0)
      return -1;
  return 0;
}

int lp__hook_install(lp_profiler_t *p) {
  if (bootstrap == NULL &&
      (bootstrap = PyCFunction_New(&bootstrap_def, NULL)) == NULL)
    return -1;
  if (mark_all(p, 1) != 0)
    return -1;
  return threading_settrace(bootstrap);
}

/* Recording starts on this thread: lazily if the frame evaluation function
 * can be ours (then now only for a profiled frame already running, to
 * adopt it), else for good. */
void lp__hook_resume(lp_profiler_t *p) {
  lazy = lp_eval_on(arm) == 1;
  PyErr_Clear();
  adopting = lazy && profiled_frame_running(p, PyEval_GetFrame());
  if (!lazy || adopting)
    PyEval_SetTrace(trace, (PyObject *)p);
}

void lp__hook_pause(lp_profiler_t *p) {
  (void)p;
  lp_eval_off();
  lazy = 0;
  untrace_this_thread();
}

int lp__hook_remove(lp_profiler_t *p) {
  PyObject *threading, *hook;
  lp_eval_off();
  lazy = 0;
  if (mark_all(p, 0) != 0)
    PyErr_Clear();
  untrace_this_thread();
  /* Undo threading.settrace only if nobody replaced our bootstrap. During
   * interpreter shutdown threading may be gone: nothing to undo then. */
  threading = PyImport_GetModule(str_threading());
  if (threading != NULL) {
    hook = PyObject_GetAttrString(threading, "_trace_hook");
    if (hook == bootstrap && threading_settrace(Py_None) != 0)
      PyErr_Clear();
    Py_XDECREF(hook);
    Py_DECREF(threading);
  }
  PyErr_Clear();
  return 0;
}

/* Frames of code added while enabled that already run on this thread had
 * their line events switched off at their call: switch them back on, so
 * they are adopted at their next line. Other threads' running frames are
 * seen from their next call. */
int lp__hook_add_code(lp_profiler_t *p, PyObject *code) {
  PyFrameObject *f = PyEval_GetFrame();
  if (lp_eval_mark(code, 1) != 0)
    return -1;
  if (lazy && p->recording && profiled_frame_running(p, f)) {
    adopting = 1;
    arm(PyThreadState_Get());
  }
  Py_XINCREF(f);
  while (f != NULL) {
    PyFrameObject *back = PyFrame_GetBack(f);
    PyCodeObject *c = PyFrame_GetCode(f);
    int rc = 0;
    if ((PyObject *)c == code)
      rc = lp_compat_line_events_on(f);
    Py_DECREF(c);
    Py_DECREF(f);
    if (rc != 0) {
      Py_XDECREF(back);
      return -1;
    }
    f = back;
  }
  return 0;
}

#endif /* LP_BACKEND_SETTRACE */
