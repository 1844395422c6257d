"""Once per process, before the first Bloom trigger waits: keep full garbage collections short.

A triggerer holds Airflow's whole import-time heap: about 156,000 objects that Python's cyclic
garbage collector tracks (Airflow 3.3, ``import airflow.triggers.base`` alone; the triggerer itself
holds more). A burst of triggers allocates enough to set off a *full* (generation 2) collection,
which walks every one of those objects with the GIL held: about 100 ms, during which the event loop
runs nothing. In a fresh process that collection falls inside the burst; ``bench/bench_trigger_burst.py``
measured 1,000 triggers stalling the loop 96-133 ms, the whole stall being that one collection.

So the first Bloom trigger to wait in a process moves every object alive at that moment (modules,
classes, configuration: what lives as long as the process) into the permanent generation with
:func:`gc.freeze`, which later collections skip; a full collection then walks only what was
allocated afterwards (triggers, hubs, answers), as a young generation would. What is frozen is still
freed by reference counting; only cyclic garbage that already exists when it freezes is never
collected (the young generations are collected first, so that is what sits in the oldest one: little,
in a process that has just imported). It costs a few milliseconds, once: the collection of the young
generations; :func:`gc.freeze` itself only moves a list.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_frozen = False


def freeze_startup_heap() -> bool:
    """Freeze the objects alive now, once per process; return whether this call froze them."""
    global _frozen
    if _frozen:
        return False
    with _lock:
        if _frozen:
            return False
        _frozen = True
    gc.collect(1)  # the young generations' garbage is freed, not frozen
    gc.freeze()
    return True
