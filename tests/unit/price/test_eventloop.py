"""The price service's runner: uvloop and the quieter garbage collector, as the service sees."""

import json
import subprocess
import sys

_PROBE = """
import asyncio, gc, json
from finplat.price.service import eventloop

async def main():
    loop = type(asyncio.get_running_loop())
    return {"loop": f"{loop.__module__}.{loop.__name__}", "thresholds": gc.get_threshold(),
            "frozen": gc.get_freeze_count()}

print(json.dumps(eventloop.run(main())))
"""


def test_the_service_runs_on_uvloop_with_its_startup_objects_frozen() -> None:
    # A process of its own: the collector's settings are global to the interpreter.
    output = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout

    seen = json.loads(output)

    assert seen["loop"].startswith("uvloop")
    assert seen["thresholds"] == [50_000, 50, 100]
    assert seen["frozen"] > 10_000  # the imported modules, the protos' descriptors, ...
