"""Helpers that several test suites share: servers' databases and vhosts, services run as
processes, CloudEvents sent as an outside program sends them, and waiting on a condition."""
