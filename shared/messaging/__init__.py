"""Messaging: the envelope, the outbox and its relay, the inbox and the consumer, and
housekeeping of both tables."""
