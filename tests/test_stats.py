"""Stats objects, merging, JSON v1 and load_stats errors, on synthetic data.

The last section checks the metadata ``LineProfiler`` registers (kind,
name, lines) and the decorator's wrappers; it needs the C extension and
skips without it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import pickle
import types

import pytest

import lineprof
from lineprof import LineprofError, load_stats, merge_stats
from lineprof.stats import KINDS, FunctionStats, LineRecord, LineStats, TaskRecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(ROOT, "docs", "lineprof.schema.json")


def sample(scale: int = 1) -> LineStats:
    return LineStats(
        [
            FunctionStats("/src/app.py", "work", 10, "function", {
                11: LineRecord(3 * scale, 300 * scale, 0, 150),
                12: LineRecord(1 * scale, 50 * scale, 0, 50),
            }),
            FunctionStats("/src/app.py", "Svc.handle", 20, "coroutine", {
                21: LineRecord(20 * scale, 200113000, 5000 * scale, 10402000),
            }),
            FunctionStats("/src/app.py", "never", 30, "generator", {}),
        ],
        meta={"python": "3.11.7", "backend": "settrace"},
    )


# -- basics -----------------------------------------------------------------------

def test_line_record_fields_and_defaults():
    rec = LineRecord(1, 2)
    assert (rec.hits, rec.time, rec.await_, rec.max_) == (1, 2, 0, 0)
    assert LineRecord(1, 2, 3, 4)._asdict() == {"hits": 1, "time": 2, "await_": 3, "max_": 4}


def test_function_totals_and_kind():
    fs = sample().functions[1]
    assert fs.key == ("/src/app.py", 20, "Svc.handle")
    assert (fs.total_hits, fs.total_time, fs.total_await) == (20, 200113000, 5000)
    assert fs.is_async and not sample().functions[0].is_async


def test_timings_like_line_profiler():
    stats = sample()
    assert stats.unit == 1e-9
    assert stats.timings == {
        ("/src/app.py", 10, "work"): [(11, 3, 300), (12, 1, 50)],
        ("/src/app.py", 20, "Svc.handle"): [(21, 20, 200113000)],
        ("/src/app.py", 30, "never"): [],
    }
    assert stats.tasks == [] and stats.meta["backend"] == "settrace"


def test_from_dict_with_the_extension_shape():
    data = {
        "unit": 1e-9,
        "meta": {"python": "3.12.1", "backend": "monitoring", "created": 1.5},
        "functions": [
            {"file": "/a.py", "name": "f", "firstlineno": 1, "kind": "async_generator",
             "lines": [(2, 1, 10, 5, 7), (3, 2, 20, 0, 11)]},
        ],
        "tasks": [],
    }
    stats = LineStats.from_dict(data)
    fs = stats.functions[0]
    assert fs.kind == "async_generator"
    assert fs.lines == {2: LineRecord(1, 10, 5, 7), 3: LineRecord(2, 20, 0, 11)}
    assert stats.meta["created"] == 1.5


def test_from_dict_merges_duplicate_keys():
    data = {"unit": 1e-9, "functions": [
        {"file": "/a.py", "name": "f", "firstlineno": 1, "kind": "function",
         "lines": [(2, 1, 10, 0, 10)]},
        {"file": "/a.py", "name": "f", "firstlineno": 1, "kind": "function",
         "lines": [(2, 2, 30, 0, 25)]},
    ], "tasks": []}
    stats = LineStats.from_dict(data)
    assert len(stats.functions) == 1
    assert stats.functions[0].lines[2] == LineRecord(3, 40, 0, 25)


@pytest.mark.parametrize("bad", [
    {},
    {"functions": [{"file": "/a.py"}]},
    {"functions": [{"file": "/a.py", "name": "f", "firstlineno": 1, "kind": "thread",
                    "lines": []}]},
    {"functions": [{"file": "/a.py", "name": "f", "firstlineno": 1, "lines": [("x", 1, 1)]}]},
])
def test_from_dict_rejects_malformed_data(bad):
    with pytest.raises(LineprofError, match="malformed stats"):
        LineStats.from_dict(bad)


def test_from_timings_makes_plain_functions():
    stats = LineStats.from_timings({("/a.py", 1, "f"): [(2, 3, 4)]}, 1e-6)
    assert stats.unit == 1e-6
    assert stats.functions == [FunctionStats("/a.py", "f", 1, "function", {2: LineRecord(3, 4)})]


# -- merging ----------------------------------------------------------------------------

def test_merge_sums_and_takes_max():
    a, b = sample(), sample(scale=2)
    b.functions[0].lines[13] = LineRecord(1, 1, 0, 1)
    b.functions.append(FunctionStats("/src/other.py", "extra", 1, "function",
                                     {2: LineRecord(1, 9, 0, 9)}))
    merged = LineStats.merge(a, b)
    work = merged.functions[0]
    assert work.lines[11] == LineRecord(9, 900, 0, 150)
    assert work.lines[12] == LineRecord(3, 150, 0, 50)
    assert work.lines[13] == LineRecord(1, 1, 0, 1)
    handle = merged.functions[1]
    assert handle.lines[21] == LineRecord(60, 400226000, 15000, 10402000)
    assert [fs.name for fs in merged.functions] == ["work", "Svc.handle", "never", "extra"]
    # Inputs are not modified.
    assert a.functions[0].lines[11] == LineRecord(3, 300, 0, 150)


def test_merge_stats_helper_and_add():
    merged = merge_stats([sample(), sample(), sample()])
    assert merged.functions[0].lines[11].hits == 9
    assert (sample() + sample()).functions[0].lines[11].hits == 6
    assert merge_stats([]) == LineStats()


def test_merge_different_units_uses_the_finest():
    coarse = LineStats.from_timings({("/a.py", 1, "f"): [(2, 1, 3)]}, 1e-6)
    fine = LineStats.from_timings({("/a.py", 1, "f"): [(2, 1, 500)]}, 1e-9)
    merged = LineStats.merge(coarse, fine)
    assert merged.unit == 1e-9
    assert merged.functions[0].lines[2] == LineRecord(2, 3500, 0, 0)


def test_merge_keeps_tasks_and_first_meta():
    a, b = sample(), sample()
    a.tasks = [{"id": 1, "name": "Task-1", "coro": "main", "time": 1, "await": 2}]
    b.tasks = [{"id": 2, "name": "Task-2", "coro": "main", "time": 3, "await": 4}]
    b.meta = {"python": "3.12.1", "extra": "x"}
    merged = LineStats.merge(a, b)
    # b's ids are shifted by a's largest id (see LineStats.merge).
    assert merged.tasks == [TaskRecord(1, "Task-1", "main", 1, 2),
                            TaskRecord(3, "Task-2", "main", 3, 4)]
    assert merged.meta == {"python": "3.11.7", "backend": "settrace", "extra": "x"}


# -- JSON v1 ------------------------------------------------------------------------------

def _resolve(schema, root):
    ref = schema.get("$ref")
    if ref:
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


_TYPES = {
    "object": dict, "array": list, "string": str,
    "integer": int, "number": (int, float), "boolean": bool,
}


def validate(instance, schema, root=None, path="$"):
    """A tiny JSON-schema check: the keywords docs/lineprof.schema.json uses."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "type" in schema:
        ok = isinstance(instance, _TYPES[schema["type"]]) and not (
            schema["type"] in ("integer", "number") and isinstance(instance, bool))
        assert ok, f"{path}: expected {schema['type']}, got {instance!r}"
    if "const" in schema:
        assert instance == schema["const"], f"{path}: expected {schema['const']!r}"
    if "enum" in schema:
        assert instance in schema["enum"], f"{path}: {instance!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert instance >= schema["minimum"], f"{path}: below minimum"
    if "exclusiveMinimum" in schema:
        assert instance > schema["exclusiveMinimum"], f"{path}: not above minimum"
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            assert key in instance, f"{path}: missing {key!r}"
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = set(instance) - set(props)
            assert not extra, f"{path}: unexpected {sorted(extra)}"
        for key, sub in props.items():
            if key in instance:
                validate(instance[key], sub, root, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            validate(item, schema["items"], root, f"{path}[{i}]")


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def test_to_dict_is_schema_v1(schema):
    doc = sample().to_dict()
    validate(doc, schema)
    assert doc["format"] == "lineprof" and doc["version"] == 1 and doc["unit"] == 1e-9
    assert doc["functions"][1] == {
        "file": "/src/app.py", "name": "Svc.handle", "firstlineno": 20, "kind": "coroutine",
        "lines": [{"lineno": 21, "hits": 20, "time": 200113000, "await": 5000,
                   "max": 10402000}],
    }
    assert doc["functions"][2]["lines"] == []
    assert doc["tasks"] == []
    assert list(doc) == ["format", "version", "unit", "functions", "tasks"]


def test_to_json_round_trips(schema):
    text = sample().to_json(indent=2)
    doc = json.loads(text)
    validate(doc, schema)
    again = LineStats.from_dict(doc)
    assert again.functions == sample().functions


def test_schema_agrees_with_jsonschema_when_installed(schema):
    from conftest import require

    jsonschema = require("jsonschema")
    jsonschema.validate(sample().to_dict(), schema)
    bad = sample().to_dict()
    bad["functions"][0]["kind"] = "thread"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize("breakage", [
    lambda d: d.update(version=2),
    lambda d: d.update(format="line_profiler"),
    lambda d: d.pop("tasks"),
    lambda d: d["functions"][0].update(kind="thread"),
    lambda d: d["functions"][0]["lines"][0].update(time=1.5),
    lambda d: d["functions"][0]["lines"][0].update(hits=-1),
    lambda d: d["functions"][0]["lines"][0].pop("await"),
    lambda d: d["functions"][0].update(extra=1),
])
def test_schema_rejects_broken_documents(schema, breakage):
    doc = sample().to_dict()
    breakage(doc)
    with pytest.raises(AssertionError):
        validate(doc, schema)


def test_kinds_match_schema(schema):
    assert sorted(schema["$defs"]["function"]["properties"]["kind"]["enum"]) == sorted(KINDS)


# -- task records -------------------------------------------------------------------------

EXT_TASKS = [
    {"id": 1, "name": "Task-1", "coro": "main", "time": 140000, "await": 81510000,
     "first": 910000, "last": 82570000, "folded": 0},
    {"id": 0, "name": "worker", "coro": "worker", "time": 7, "await": 9,
     "first": 1, "last": 2, "folded": 5120},
]


def with_tasks(tasks=EXT_TASKS, unit=1e-9):
    stats = sample()
    stats.unit = unit
    stats.tasks = tasks
    return stats


def test_task_records_from_the_extension_shape():
    stats = LineStats.from_dict({"unit": 1e-9, "functions": [], "tasks": EXT_TASKS})
    one, fold = stats.tasks
    assert one == TaskRecord(1, "Task-1", "main", 140000, 81510000, 910000, 82570000, 0)
    assert (one.wall, one.is_fold, one.count) == (81650000, False, 1)
    assert fold.await_ == 9 and fold.is_fold and fold.count == 5120
    assert [t.to_dict() for t in stats.tasks] == EXT_TASKS


def test_task_record_optional_fields_default_to_zero():
    rec = TaskRecord.from_dict({"id": 2, "name": "n", "coro": "c", "time": 1, "await": 2,
                                "future_field": "ignored"})
    assert rec == TaskRecord(2, "n", "c", 1, 2, 0, 0, 0)
    assert LineStats(tasks=[rec]).tasks == [rec]


@pytest.mark.parametrize("task", [
    {"id": 1, "name": "n", "time": 1, "await": 2},                 # no coro
    {"id": 1, "name": "n", "coro": "c", "time": 1},                # no await
    {"id": 1, "name": "n", "coro": "c", "time": -1, "await": 2},   # negative
    {"id": 1, "name": "n", "coro": "c", "time": 1.5, "await": 2},  # not an integer
    {"id": 1, "name": 3, "coro": "c", "time": 1, "await": 2},      # name not a string
    "Task-1",
])
def test_from_dict_rejects_malformed_tasks(task):
    with pytest.raises(LineprofError, match="malformed stats"):
        LineStats.from_dict({"functions": [], "tasks": [task]})


def test_merge_renumbers_task_ids_per_profile():
    a = with_tasks([dict(EXT_TASKS[0], id=i) for i in (1, 2, 5)] + [EXT_TASKS[1]])
    b = with_tasks([dict(EXT_TASKS[0], id=i) for i in (2, 1)] + [EXT_TASKS[1]])
    c = with_tasks([dict(EXT_TASKS[0], id=1)])
    merged = LineStats.merge(a, b, c)
    assert [t.id for t in merged.tasks] == [1, 2, 5, 0, 7, 6, 0, 8]
    assert sum(t.count for t in merged.tasks) == 3 + 5120 + 2 + 5120 + 1
    # One profile alone keeps its ids; inputs are not modified.
    assert [t.id for t in LineStats.merge(b).tasks] == [2, 1, 0]
    assert [t.id for t in b.tasks] == [2, 1, 0]


def test_merge_converts_task_times_to_the_finest_unit():
    coarse = with_tasks([EXT_TASKS[1]], unit=1e-6)
    fine = with_tasks([EXT_TASKS[1]], unit=1e-9)
    merged = LineStats.merge(coarse, fine)
    assert merged.unit == 1e-9
    assert merged.tasks[0] == TaskRecord(0, "worker", "worker", 7000, 9000, 1000, 2000, 5120)
    assert merged.tasks[1] == TaskRecord(0, "worker", "worker", 7, 9, 1, 2, 5120)


def test_tasks_in_json_v1(schema):
    doc = with_tasks().to_dict()
    validate(doc, schema)
    assert doc["tasks"] == EXT_TASKS
    again = LineStats.from_dict(json.loads(with_tasks().to_json()))
    assert again.tasks == with_tasks().tasks and again == with_tasks()
    # The optional fields may be left out.
    doc["tasks"][0] = {k: doc["tasks"][0][k] for k in ("id", "name", "coro", "time", "await")}
    validate(doc, schema)


@pytest.mark.parametrize("breakage", [
    lambda t: t.pop("coro"),
    lambda t: t.pop("await"),
    lambda t: t.update(time=-5),
    lambda t: t.update(folded=1.0),
    lambda t: t.update(name=None),
    lambda t: t.update(extra=1),
])
def test_schema_rejects_broken_tasks(schema, breakage):
    doc = with_tasks().to_dict()
    breakage(doc["tasks"][0])
    with pytest.raises(AssertionError):
        validate(doc, schema)


def test_schema_task_fields_match_task_record(schema):
    task = schema["$defs"]["task"]
    assert task["required"] == ["id", "name", "coro", "time", "await"]
    fields = [f.rstrip("_") for f in TaskRecord._fields]
    assert list(task["properties"]) == fields


# -- load_stats errors ------------------------------------------------------------------------

def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.lprof"
    with pytest.raises(LineprofError) as info:
        load_stats(path)
    assert str(info.value) == f"{path}: no such file"


def test_load_directory(tmp_path):
    with pytest.raises(LineprofError, match="is a directory"):
        load_stats(tmp_path)


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.lprof"
    path.write_bytes(b"")
    with pytest.raises(LineprofError, match="empty file"):
        load_stats(path)


def test_load_line_profiler_pickle(tmp_path):
    # The shape line_profiler writes: a pickled object holding `timings` and `unit`.
    path = tmp_path / "app.py.lprof"
    path.write_bytes(pickle.dumps({"timings": {("app.py", 1, "f"): [(2, 1, 10)]},
                                   "unit": 1e-9}, protocol=5))
    with pytest.raises(LineprofError) as info:
        load_stats(path)
    assert str(info.value) == (
        f"{path} is a line_profiler pickle, not a lineprof profile; "
        f"view it with: python -m line_profiler {path}")


def test_load_other_pickle(tmp_path):
    path = tmp_path / "other.lprof"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    with pytest.raises(LineprofError, match="is a Python pickle, not a lineprof profile"):
        load_stats(path)


def _extension():
    try:
        from lineprof import _lineprof
    except ImportError as exc:
        pytest.skip(f"the C extension is not built: {exc}")
    return _lineprof


def test_load_damaged_file(tmp_path):
    _extension()
    path = tmp_path / "junk.lprof"
    path.write_bytes(b"this is not a profile at all\n")
    with pytest.raises(LineprofError) as info:
        load_stats(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


# -- metadata from a live LineProfiler --------------------------------------------------------

def plain(x):
    y = x + 1
    return y


def gen(n):
    for i in range(n):
        yield i


async def coro(n):
    await asyncio.sleep(0)
    return n


async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@types.coroutine
def old_style():
    yield


def deco(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@deco
def decorated(x):
    return x * 2


class Thing:
    def method(self):
        return 1

    @classmethod
    def cls_method(cls):
        return 2

    @staticmethod
    def static_method():
        return 3

    @property
    def prop(self):
        return 4

    @prop.setter
    def prop(self, value):
        self._value = value


@pytest.fixture
def prof():
    _extension()
    p = lineprof.LineProfiler()
    yield p
    while p.enable_count:
        p.disable_by_count()
    p.disable()


def _by_name(stats):
    return {fs.name: fs for fs in stats.functions}


def test_registered_kinds_names_and_lines(prof):
    for f in (plain, gen, coro, agen, old_style, decorated, Thing.method, Thing().method,
              Thing.__dict__["cls_method"], Thing.__dict__["static_method"], Thing.prop):
        prof.add_function(f)
    fns = _by_name(prof.get_stats())
    assert {name: fs.kind for name, fs in fns.items()} == {
        "plain": "function", "gen": "generator", "coro": "coroutine",
        "agen": "async_generator", "old_style": "coroutine", "decorated": "function",
        "Thing.method": "function", "Thing.cls_method": "function",
        "Thing.static_method": "function", "Thing.prop": "function",
    }
    assert fns["plain"].file == os.path.abspath(__file__)
    assert fns["plain"].firstlineno == plain.__code__.co_firstlineno
    # functools.wraps is followed to the decorated function's own code.
    assert fns["decorated"].firstlineno == inspect.unwrap(decorated).__code__.co_firstlineno
    # Both property accessors are registered.
    props = [fs for fs in prof.get_stats().functions if fs.name == "Thing.prop"]
    assert len(props) == 2


@pytest.mark.parametrize("thing", [len, 42, "text", Thing, object.__init__])
def test_add_function_rejects_objects_without_code(prof, thing):
    with pytest.raises(TypeError, match="no Python code object"):
        prof.add_function(thing)


def test_decorator_keeps_the_kind_of_function(prof):
    assert inspect.iscoroutinefunction(prof(coro))
    assert inspect.isgeneratorfunction(prof(gen))
    assert inspect.isasyncgenfunction(prof(agen))
    assert not inspect.iscoroutinefunction(prof(plain))
    wrapped = prof(plain)
    assert wrapped.__wrapped__ is plain and wrapped.__name__ == "plain"
    assert prof(wrapped) is wrapped
    assert prof.enable_count == 0


def test_decorated_calls_are_recorded(prof):
    w_plain, w_gen, w_coro, w_agen = prof(plain), prof(gen), prof(coro), prof(agen)

    async def main():
        values = [x async for x in w_agen(2)]
        return await w_coro(5), values

    assert w_plain(1) == 2
    assert list(w_gen(3)) == [0, 1, 2]
    assert asyncio.run(main()) == (5, [0, 1])
    assert prof.enable_count == 0 and not prof.enabled
    fns = _by_name(prof.get_stats())
    assert fns["plain"].total_hits == 2
    assert fns["gen"].lines[gen.__code__.co_firstlineno + 2].hits == 3
    assert fns["coro"].total_hits >= 2 and fns["agen"].total_hits >= 4


def test_async_generator_wrapper_forwards_asend_athrow_aclose(prof):
    async def echo():
        try:
            received = None
            while True:
                try:
                    received = yield received
                except ValueError:
                    received = "caught"
        finally:
            log.append("closed")

    log = []
    wrapped = prof(echo)

    async def main():
        agen = wrapped()
        assert await agen.asend(None) is None
        assert await agen.asend(1) == 1
        assert await agen.athrow(ValueError()) == "caught"
        await agen.aclose()

    asyncio.run(main())
    assert log == ["closed"]
    assert prof.enable_count == 0


def test_generator_wrapper_forwards_send_and_return(prof):
    def acc():
        total = 0
        while True:
            value = yield total
            if value is None:
                return total
            total += value

    g = prof(acc)()
    next(g)
    assert g.send(2) == 2 and g.send(3) == 5
    with pytest.raises(StopIteration) as info:
        g.send(None)
    assert info.value.value == 5
    assert prof.enable_count == 0


def test_sync_wrapper_around_coroutine_keeps_profiler_enabled(prof):
    wrapped = prof(deco(coro))
    assert prof.enable_count == 1 and prof.enabled  # pinned: the coroutine runs later
    assert asyncio.run(wrapped(7)) == 7
    assert _by_name(prof.get_stats())["coro"].total_hits >= 2


def test_wrapping_methods_and_properties(prof):
    class K:
        @prof
        def m(self):
            return 1

        @prof
        @classmethod
        def c(cls):
            return 2

        @prof
        @staticmethod
        def s():
            return 3

        @prof
        @property
        def p(self):
            return 4

    k = K()
    assert (k.m(), K.c(), K.s(), k.p) == (1, 2, 3, 4)
    assert isinstance(K.__dict__["c"], classmethod)
    assert isinstance(K.__dict__["p"], property)
    assert sum(fs.total_hits for fs in prof.get_stats().functions) == 4


def test_enable_by_count_nests(prof):
    prof.enable_by_count()
    prof.enable_by_count()
    assert prof.enabled and prof.enable_count == 2
    prof.disable_by_count()
    assert prof.enabled
    prof.disable_by_count()
    assert not prof.enabled
    prof.disable_by_count()  # extra calls are harmless
    assert prof.enable_count == 0
    with prof:
        assert prof.enabled
    assert not prof.enabled
    assert prof.runcall(plain, 3) == 4


def test_get_stats_dump_and_load_round_trip(prof, tmp_path):
    prof.add_function(plain)
    prof.runcall(plain, 1)
    path = tmp_path / "out.lprof"
    prof.dump_stats(path)
    loaded = load_stats(path)
    assert loaded.functions == prof.get_stats().functions
    assert loaded.unit == 1e-9
