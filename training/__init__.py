"""A training run: config -> suite -> agent -> unroll source -> loop (``run``), the learner loop
(``loop``), batching, the reporter (``report``) and the grid of heads x seeds (``compare``)."""
