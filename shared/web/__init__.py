"""The HTTP edge: problem details, ETags, tokens and the bearer dependency, rate limits,
middleware, operations routes, the OpenAPI document."""
