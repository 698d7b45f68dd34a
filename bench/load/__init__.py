"""the production processes on loopback under load: the harness (`stack`, `world`,
`servers`) and the runs (`api_load`, `soak`, `run_peak`), each a `python -m` script."""
