"""The regional demo: `alerthub demo`."""
