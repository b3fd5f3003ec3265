"""alerthub_client: the partners' Python client for an alerthub (asyncio, with a small synchronous
wrapper), webhook signature checks and a ready webhook receiver. It never imports the hub."""

from alerthub_client.client import Event, HubClient, Page
from alerthub_client.errors import (
    Conflict,
    Forbidden,
    HistoryTruncated,
    HubError,
    HubUnreachable,
    MalformedJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from alerthub_client.sync import SyncHubClient
from alerthub_client.webhooks import WebhookError, WebhookReceiver, verify_webhook

__all__ = [
    "Conflict",
    "Event",
    "Forbidden",
    "HistoryTruncated",
    "HubClient",
    "HubError",
    "HubUnreachable",
    "MalformedJSON",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "SyncHubClient",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
    "WebhookError",
    "WebhookReceiver",
    "verify_webhook",
]
