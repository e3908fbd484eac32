"""What the server needs of the libraries it calls from many threads at once.

msgspec before 0.23 built a struct type's decoding info in place the first time the type was
used: a second thread converting to the same type meanwhile could read it half built and crash
the process (a segfault in msgspec's `convert`). Every delivery of a Celery executor and every
`asyncio.to_thread` that parses a manifest or a record can be such a first use; an executor died
at its first manifest this way. The floor in pyproject.toml keeps the fixed version."""

import subprocess
import sys
import textwrap

FIRST_USE_IN_THREADS = textwrap.dedent('''
    import sys, threading
    import msgspec

    sys.setswitchinterval(1e-6)  # hand the GIL over as often as the interpreter can
    SHAPES = """
    from typing import Literal
    import msgspec
    class Input(msgspec.Struct, kw_only=True):
        name: str
        type: Literal["string", "number"] = "string"
        tags: list[str] = []
    class Exec(msgspec.Struct, kw_only=True):
        entry: str
        inputs: list[Input] = []
        env: dict[str, str] = {}
    class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        name: str
        exec: Exec
        more: dict[str, Exec] = {}
        approval: Input | None = None
    """
    DATA = {"name": "writer", "exec": {"entry": "run.py", "inputs": [{"name": "a"}]},
            "more": {"b": {"entry": "b.py"}}, "approval": {"name": "c", "type": "number"}}

    for i in range(300):
        fresh = {}  # new classes each round: msgspec has built nothing for them yet
        exec(SHAPES, fresh)
        start, converted = threading.Barrier(8), []
        def first_use():
            start.wait()
            assert msgspec.convert(DATA, fresh["Manifest"]).exec.inputs[0].name == "a"
            converted.append(1)
        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(converted) == 8, f"round {i}: {len(converted)} of 8 threads converted"
    print("ok")
''')


def test_msgspec_survives_first_use_of_a_type_in_many_threads_at_once():
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", FIRST_USE_IN_THREADS],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
