"""An alert's way out: subscriptions, filters, fan-out, feeds, SSE and webhooks."""
