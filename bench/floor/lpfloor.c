/* lpfloor.c - the floor hook: the cheapest line hook the bench can build on
 * each backend, as the yardstick lineprof's own hook is measured against.
 * Per line event of profiled code it reads CLOCK_MONOTONIC and adds one to
 * a counter; nothing else.
 *
 *   - Legacy backend (CPython < 3.12): a C trace function installed with
 *     PyEval_SetTrace. Frames whose code is not registered get their
 *     f_trace_lines turned off at their call event (through the public
 *     attribute, as lineprof does), so only registered code sends line
 *     events. enable() does the same for the frames already running.
 *   - sys.monitoring backend (3.12+): line() is a METH_FASTCALL function the
 *     Python side registers as the LINE callback of a free tool id, with
 *     set_local_events on the registered code only (Floor in bench/child.py).
 *
 * The module also carries measure(fn, arg, label), the bench's door for
 * callgrind (run with --instr-atstart=no): only the call fn(arg) is
 * instrumented, and its instruction count is dumped as one part of the
 * profile, labelled label. Start-up, imports and bytecode compilation stay
 * out of the counts, whatever else happens on the machine, and run faster.
 * It needs valgrind's <valgrind/callgrind.h> at build time: without it,
 * CALLGRIND_REQUESTS is 0 and measure() only calls fn(arg).
 *
 * Thread contract: everything runs with the GIL held. The counter is global:
 * one floor hook per process. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define LPFLOOR_CALLGRIND 1 /* client requests: no-ops outside valgrind */
#endif
#endif
#ifndef LPFLOOR_CALLGRIND
#define LPFLOOR_CALLGRIND 0
#endif

#define MAX_CODES 16

static uint64_t count;   /* line events seen */
static uint64_t last_ns; /* the last clock reading, so the read is kept */
static PyObject *codes[MAX_CODES]; /* registered code objects, pinned */
static int ncodes;

static inline void tick(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  last_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  count++;
}

/* add_code(code): registers a code object (at most MAX_CODES). */
static PyObject *add_code(PyObject *mod, PyObject *code) {
  int i;
  if (!PyCode_Check(code)) {
    PyErr_SetString(PyExc_TypeError, "add_code() expects a code object");
    return NULL;
  }
  for (i = 0; i < ncodes; i++)
    if (codes[i] == code)
      Py_RETURN_NONE;
  if (ncodes == MAX_CODES) {
    PyErr_SetString(PyExc_ValueError, "too many code objects");
    return NULL;
  }
  Py_INCREF(code);
  codes[ncodes++] = code;
  Py_RETURN_NONE;
}

/* Returns fn(arg), or NULL with an exception set. Under callgrind the call
 * alone is instrumented, and dumped as a part labelled label. */
static PyObject *measured_call(PyObject *fn, PyObject *arg, const char *label) {
  PyObject *r;
#if LPFLOOR_CALLGRIND
  CALLGRIND_START_INSTRUMENTATION;
  CALLGRIND_ZERO_STATS;
#endif
  r = PyObject_CallOneArg(fn, arg);
#if LPFLOOR_CALLGRIND
  CALLGRIND_DUMP_STATS_AT(label);
  CALLGRIND_STOP_INSTRUMENTATION;
#endif
  return r;
}

/* measure(fn, arg, label) -> fn(arg), counted apart under callgrind. */
static PyObject *measure(PyObject *mod, PyObject *const *args, Py_ssize_t n) {
  const char *label;
  if (n != 3 || !PyUnicode_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "measure(fn, arg, label: str)");
    return NULL;
  }
  if ((label = PyUnicode_AsUTF8(args[2])) == NULL)
    return NULL;
  return measured_call(args[0], args[1], label);
}

/* count() -> int: line events counted so far. */
static PyObject *get_count(PyObject *mod, PyObject *unused) {
  return PyLong_FromUnsignedLongLong(count);
}

/* reset(): zeroes the counter. */
static PyObject *reset(PyObject *mod, PyObject *unused) {
  count = 0;
  Py_RETURN_NONE;
}

#if PY_VERSION_HEX >= 0x030C0000

#define FLOOR_BACKEND "monitoring"

/* line(code, line_number): the sys.monitoring LINE callback. */
static PyObject *line(PyObject *mod, PyObject *const *args, Py_ssize_t n) {
  tick();
  Py_RETURN_NONE;
}

#define BACKEND_METHODS                                                      \
  {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,                 \
   "The sys.monitoring LINE callback."},

#else /* the legacy backend */

#define FLOOR_BACKEND "settrace"

static int registered(PyFrameObject *frame) {
  PyObject *code = (PyObject *)PyFrame_GetCode(frame);
  int i, found = 0;
  for (i = 0; i < ncodes && !found; i++)
    found = codes[i] == code;
  Py_DECREF(code);
  return found;
}

static PyObject *attr_trace_lines;

static void lines_off(PyFrameObject *frame) {
  if (PyObject_SetAttr((PyObject *)frame, attr_trace_lines, Py_False) != 0)
    PyErr_Clear();
}

static int trace(PyObject *obj, PyFrameObject *frame, int what,
                 PyObject *arg) {
  if (what == PyTrace_LINE)
    tick();
  else if (what == PyTrace_CALL && !registered(frame))
    lines_off(frame);
  return 0;
}

/* enable(): installs the trace function on the calling thread and stops
 * line events of the frames already running (none of them is profiled). */
static PyObject *enable(PyObject *mod, PyObject *unused) {
  PyFrameObject *f = PyEval_GetFrame(), *back;
  Py_XINCREF(f);
  while (f != NULL) {
    if (!registered(f))
      lines_off(f);
    back = PyFrame_GetBack(f);
    Py_DECREF(f);
    f = back;
  }
  PyEval_SetTrace(trace, NULL);
  Py_RETURN_NONE;
}

/* disable(): removes the trace function from the calling thread. */
static PyObject *disable(PyObject *mod, PyObject *unused) {
  PyEval_SetTrace(NULL, NULL);
  Py_RETURN_NONE;
}

#define BACKEND_METHODS                                                      \
  {"enable", enable, METH_NOARGS, "Install the trace function."},            \
  {"disable", disable, METH_NOARGS, "Remove the trace function."},

#endif

static PyMethodDef methods[] = {
    {"add_code", add_code, METH_O, "Register a code object."},
    {"count", get_count, METH_NOARGS, "Line events counted so far."},
    {"reset", reset, METH_NOARGS, "Zero the counter."},
    {"measure", (PyCFunction)(void (*)(void))measure, METH_FASTCALL,
     "measure(fn, arg, label) -> fn(arg), counted apart under callgrind."},
    BACKEND_METHODS
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lpfloor",
                                    "The floor line hook of lineprof's bench.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__lpfloor(void) {
  PyObject *m = PyModule_Create(&module);
  if (m == NULL)
    return NULL;
#if PY_VERSION_HEX < 0x030C0000
  attr_trace_lines = PyUnicode_InternFromString("f_trace_lines");
  if (attr_trace_lines == NULL) {
    Py_DECREF(m);
    return NULL;
  }
#endif
  if (PyModule_AddStringConstant(m, "BACKEND", FLOOR_BACKEND) != 0 ||
      PyModule_AddIntConstant(m, "CALLGRIND_REQUESTS", LPFLOOR_CALLGRIND) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
