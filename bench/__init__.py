"""`python -m bench ...`: every benchmark, each beside a baseline measured in the same run.

- `engine`: the engine's CPU time per recommendation beside plyr.fm's original
  algorithm in pure Python (`baseline`);
- `api` (+ `api_server`): the API's cache hits under load beside a bare route;
- `jetstream`: frames/s through the consumer beside plain decoding and enqueueing;
- `forget`: a delete's Redis cost, version set against a keyspace SCAN;
- `reliability/`: every fault scenario on real parts, judged against a fault-free run;
- `load/`: the production processes under sustained load and a soak.

speed is measured here, never asserted in tests. a development package: the wheel and
the image leave it out, and shipped code never imports it (lint-imports checks).
"""
