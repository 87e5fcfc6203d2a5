"""Our code under load: relay and consumer wired as a service wires them; services as processes."""
