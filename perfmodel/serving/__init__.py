"""The serving simulator: SD under load (``magicdec-model simulate``, docs/serving.md).

Depends on the step model (:mod:`..step`, :mod:`..scenario`), never the other way round.
Modules: ``workload`` (lengths, presets, arrivals, traces), ``costs`` (:class:`costs.ServingModel`:
ragged engine steps, the KV pool, acceptance), ``policy`` (off, fixed, schedule, optimal),
``simulator`` (the discrete-event loop of one replica), ``metrics`` (the engines' metrics and
``COLUMNS``), ``runner`` (points, replicas, executors, the max-QPS bisection), ``export`` (engine
configurations), ``page`` (the HTML page; imports plotly).  Import the modules directly: this
package imports nothing on its own, so ``simulate``'s start-up stays light.
"""
