"""How a service process runs: its roles, the parts each role is made of, their composition
and the HTTP server."""
