"""Redis: keys, Lua scripts, the pipelined connection, batching, leases, cursors, counters and
the embedded server. Knows nothing of HTTP."""
