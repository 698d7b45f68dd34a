"""test-only helpers: real servers on loopback, waiting, sample data."""
