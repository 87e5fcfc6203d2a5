"""Servers the tests start themselves, on ports and folders of their own, always removed.

The machine's PostgreSQL and RabbitMQ are shared: with other test runs, other engineers, and
the developer's own work. A test that stops, kills, partitions or reconfigures a server does it
to one of these instead (see `registry` for how they are found and removed, whatever happens
to the run).
"""
