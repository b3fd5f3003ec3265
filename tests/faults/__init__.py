"""Fault suite (issue 5): real Redis servers and hub processes, killed, filled or cut off on
purpose, each test bounded in time. Plain helper modules only: no conftest with autouse fixtures,
since several fault tests share this package."""
