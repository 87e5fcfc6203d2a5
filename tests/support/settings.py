"""What every test stack of the services configures alike."""

from __future__ import annotations

from shared.web.tokens import SigningKey

JWT_SECRET = "end-to-end-test-secret-0123456789abcdef"
# The key user_svc derives from JWT_SECRET: tests mint tokens for users only order_svc knows.
SIGNING_KEY = SigningKey.from_secret(JWT_SECRET)
# The administrator of the chaos and failover stacks (their user_svc's `ADMIN_EMAILS`): it
# gives stock-managed SKUs their stock.
ADMIN_EMAIL = "stack-admin@example.com"
# Test stacks register and log in many users, and place and poll many orders, from one address.
NO_RATE_LIMITS = dict.fromkeys(
    (
        "LOGIN_RATE_LIMIT",
        "LOGIN_ACCOUNT_RATE_LIMIT",
        "REGISTRATION_RATE_LIMIT",
        "REGISTRATION_ACCOUNT_RATE_LIMIT",
        "RATE_LIMIT_READS",
        "RATE_LIMIT_WRITES",
    ),
    "1000000/minute",
)
