"""Plain baselines: the same work as ours written directly against the libraries (or a peer).

They exist only to give our figures a yardstick measured in the same run on the same machine.
"""
