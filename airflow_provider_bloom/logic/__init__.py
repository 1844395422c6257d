"""The provider's decisions, free of I/O and of Airflow: the same rules in a worker, a triggerer and the
emulator.

- :mod:`.records`: statuses (each with its terminal rule), the small records XCom holds, trigger events;
- :mod:`.waiting`: :class:`~.waiting.PendingImages`, the state of one wait, and the events a wait ends with;
- :mod:`.pacing`: the token bucket that keeps a key within Bloom's requests per minute;
- :mod:`.reconcile`: how to find what a paid request whose answer was lost created;
- :mod:`.prices`: Bloom's price list and what a call costs; :mod:`.provenance`: which prompt and source
  made each image;
- :mod:`.batch`: batch rows, the journal that survives a kill, the manifest and progress;
- :mod:`.review`: a human review's pages, the body a reviewer reads, and what an answer means.
"""
