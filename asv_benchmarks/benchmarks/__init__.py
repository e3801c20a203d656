"""asv benchmarks for arbiter-core, one module per area."""
