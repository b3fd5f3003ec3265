"""The hub's benchmarks: each module is a script (`python -m benchmarks.NAME`, or
`python benchmarks/NAME.py`) that writes its figures as JSON; benchmarks/kit/ holds what they
share. docs/speed.md says what each measures and what it measured last."""
