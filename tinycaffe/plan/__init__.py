"""Choosing where to cut a net: profiles, links, a cost model and an exact planner.

* :mod:`profile` -- per-layer forward times and blob sizes measured on one machine
  (``tinycaffe profile``), as a small JSON document;
* :mod:`link` -- a link's bandwidth and round-trip time as JSON, from given
  numbers, or :mod:`probe` -- measured against a running ``tinycaffe serve``
  (``tinycaffe probe``);
* :mod:`cuts` -- the net as a DAG of layer groups; a cut is a down-set of it;
* :mod:`cost` -- bytes on the wire per blob and encoding, and the time of a cut;
* :mod:`mincut`, :mod:`search` -- exact optimisation over all down-sets;
* :mod:`planner` -- the ranked options and the Pareto front (``tinycaffe plan``);
* :mod:`wire_accuracy` -- the measured accuracy cost of a lossy wire encoding;
* :mod:`write` -- the chosen cut's two prototxts, written by ``split``'s own code;
* :mod:`recut` -- a client that moves its cut while running, against
  ``tinycaffe serve --any-cut``, when its estimate of the link's throughput changes.
"""
