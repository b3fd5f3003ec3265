"""alerthub_client: the partners' Python client for an alerthub (asyncio, with a small synchronous
wrapper), webhook signature checks and a ready webhook receiver. It never imports the hub."""
