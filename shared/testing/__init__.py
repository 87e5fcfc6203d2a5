"""The testing kit: what another project's tests need to run against eventful, in its own CI.

`shared.testing.plugin` is a pytest plugin, loaded by pytest wherever this package is installed
(entry point `eventful` in the `pytest11` group); it adds options and fixtures only, so a test
suite that requests none of its fixtures runs exactly as without it. The modules under it work
without pytest too: `stack` (the services started as processes of their own, or found at given
URLs), `tap` (a copy of every event published), `users` (a signed-in user with HTTP clients) and
`waiting` (`eventually`). docs/testing-kit.md tells how to use them.
"""
