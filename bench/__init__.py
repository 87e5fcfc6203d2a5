"""The benchmark harness: our mechanisms against plain baselines, on the real servers.

Measurement only. Everything here drives the services and `shared/` from the outside (or as a
library, exactly as a service process wires it); nothing in the services knows it exists.
`python -m bench [--quick]` runs it all and writes `bench/results/latest.json` (ignored by git);
`--reference` writes the committed run in `bench/results/reference/` instead.
"""
