#include "lp_evalframe.h"

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000

/* The frame's code and owner: CPython's own definition. */
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"

static lp_eval_cb on_enter;
static Py_ssize_t extra = -1; /* our co_extra index */
static char marker;           /* the co_extra value of profiled code */

#define SUSPENDABLE                                                          \
  (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

static int need_index(void) {
  if (extra < 0 && (extra = _PyEval_RequestCodeExtraIndex(NULL)) < 0) {
    PyErr_SetString(PyExc_RuntimeError, "lineprof: no co_extra index left");
    return -1;
  }
  return 0;
}

static int is_marked(PyCodeObject *co) {
  void *v;
  if (_PyCode_GetExtra((PyObject *)co, extra, &v) != 0) {
    PyErr_Clear();
    return 0;
  }
  return v == &marker;
}

/* With this function installed CPython 3.11 evaluates every frame through
 * it (it does not inline Python-to-Python calls then); co_extra is NULL
 * for code nobody marked, so the common case is one load. Calling a
 * generator or coroutine function also runs its frame up to
 * RETURN_GENERATOR, not owned by the generator yet: not an entry. */
static PyObject *eval(PyThreadState *ts, struct _PyInterpreterFrame *f,
                      int throwflag) {
  PyCodeObject *co = f->f_code;
  if (co->co_extra != NULL && is_marked(co) &&
      ((co->co_flags & SUSPENDABLE) == 0 ||
       f->owner == FRAME_OWNED_BY_GENERATOR))
    on_enter(ts);
  return _PyEval_EvalFrameDefault(ts, f, throwflag);
}

int lp_eval_on(lp_eval_cb cb) {
  PyInterpreterState *interp = PyInterpreterState_Get();
  _PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
  if (need_index() != 0)
    return -1;
  if (cur != eval && cur != _PyEval_EvalFrameDefault)
    return 0;
  on_enter = cb;
  _PyInterpreterState_SetEvalFrameFunc(interp, eval);
  return 1;
}

void lp_eval_off(void) {
  PyInterpreterState *interp = PyInterpreterState_Get();
  if (_PyInterpreterState_GetEvalFrameFunc(interp) == eval)
    _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
}

int lp_eval_mark(PyObject *code, int on) {
  if (need_index() != 0)
    return -1;
  return _PyCode_SetExtra(code, extra, on ? &marker : NULL);
}

#else

int lp_eval_on(lp_eval_cb cb) {
  (void)cb;
  return 0;
}

void lp_eval_off(void) {}

int lp_eval_mark(PyObject *code, int on) {
  (void)code;
  (void)on;
  return 0;
}

#endif
