/* lp_compat.h - every CPython version ladder of the binding lives here.
 * Only public or exported API and the public cpython/ structs are used. */
#ifndef LP_COMPAT_H
#define LP_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#if defined(__GNUC__)
#define LP_LIKELY_COMPAT(x) __builtin_expect(!!(x), 1)
#else
#define LP_LIKELY_COMPAT(x) (x)
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define LP_BACKEND_MONITORING 1
#define LP_BACKEND_NAME "monitoring"
#else
#define LP_BACKEND_SETTRACE 1
#define LP_BACKEND_NAME "settrace"
#endif

#if PY_VERSION_HEX >= 0x030C0000
/* A small int argument of a monitoring callback (line numbers, offsets):
 * the compact-value fast path avoids PyLong_AsLong's general case. */
static inline long lp_compat_small_int(PyObject *v) {
  if (LP_LIKELY_COMPAT(PyLong_CheckExact(v) &&
                       PyUnstable_Long_IsCompact((PyLongObject *)v)))
    return (long)PyUnstable_Long_CompactValue((PyLongObject *)v);
  return PyLong_AsLong(v);
}

/* A LINE callback's line number, a positive int of one 30-bit digit in
 * practice: read in place into *out (returns 1), or 0 for the general case
 * (lp_compat_small_int). */
static inline int lp_compat_line_arg(PyObject *v, int32_t *out) {
  const PyLongObject *l = (const PyLongObject *)v;
  if (l->long_value.lv_tag != (1 << _PyLong_NON_SIZE_BITS))
    return 0;
  *out = (int32_t)l->long_value.ob_digit[0];
  return 1;
}
#endif

/* Whether the interpreter is finalizing (Py_IsFinalizing is public from
 * 3.13; before, the same function is exported as _Py_IsFinalizing). */
#if PY_VERSION_HEX >= 0x030D0000
#define LP_IS_FINALIZING() Py_IsFinalizing()
#else
#define LP_IS_FINALIZING() _Py_IsFinalizing()
#endif

#if PY_VERSION_HEX < 0x030900B1
static inline PyCodeObject *PyFrame_GetCode(PyFrameObject *f) {
  Py_INCREF(f->f_code);
  return f->f_code;
}
#endif

#ifdef LP_BACKEND_SETTRACE

/* Returns the generator/coroutine running frame f (borrowed), or NULL. */
static inline PyObject *lp_compat_frame_gen(PyFrameObject *f) {
#if PY_VERSION_HEX >= 0x030B0000
  PyObject *gen = PyFrame_GetGenerator(f);
  Py_XDECREF(gen); /* the generator owns the running frame: stays alive */
  return gen;
#else
  return f->f_gen;
#endif
}

/* Returns 1 if the RETURN event just seen for f is a yield (f suspended),
 * given its generator gen (may be NULL). */
static inline int lp_compat_frame_suspended(PyFrameObject *f, PyObject *gen) {
#if PY_VERSION_HEX >= 0x030B0000
  (void)f;
  /* -1 is FRAME_SUSPENDED in 3.11's enum _framestate; YIELD_VALUE sets it
   * before the trace function sees the return. */
  return gen != NULL && ((PyGenObject *)gen)->gi_frame_state == -1;
#elif PY_VERSION_HEX >= 0x030A0000
  (void)gen;
  return f->f_state == FRAME_SUSPENDED;
#else
  (void)gen;
  return f->f_stacktop != NULL;
#endif
}

/* Sets whether frame f sends line events. Returns 0, or -1 with an
 * exception set. */
static inline int lp_compat_set_line_events(PyFrameObject *f, int on) {
#if PY_VERSION_HEX >= 0x030B0000
  static PyObject *attr;
  if (attr == NULL && (attr = PyUnicode_InternFromString("f_trace_lines")) == NULL)
    return -1;
  return PyObject_SetAttr((PyObject *)f, attr, on ? Py_True : Py_False);
#else
  f->f_trace_lines = (char)on;
  return 0;
#endif
}

#define lp_compat_no_line_events(f) lp_compat_set_line_events((f), 0)
#define lp_compat_line_events_on(f) lp_compat_set_line_events((f), 1)

#if PY_VERSION_HEX < 0x030900B1
static inline PyFrameObject *PyFrame_GetBack(PyFrameObject *f) {
  Py_XINCREF(f->f_back);
  return f->f_back;
}
#endif

#endif /* LP_BACKEND_SETTRACE */

#endif
