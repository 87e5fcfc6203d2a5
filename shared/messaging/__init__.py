"""Messaging: the envelope and how it travels over AMQP (binding), the outbox and its relay, the
inbox and the consumer, housekeeping of both tables, and the publishing kit for other programs."""
