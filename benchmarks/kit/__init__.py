"""What the benchmarks share: starting Redis and hub processes (processes), generating load
(load), receiving deliveries (receivers, receiver_control), measuring (measurement) and writing
the JSON results (report)."""
