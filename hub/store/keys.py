"""Every Redis key the hub uses, under one configurable prefix.

One hash tag, `{core}`, for everything the ingest script decides on atomically: the sender's token
and rate counter, alerts, the sender-id index, fingerprints, clusters, links, the recent index and
the event log. The script touches one Redis Cluster slot; the scripts build member keys (an alert,
a cluster, a window's link index, a node) from the tag prefix they are given, which stays inside
that slot.
Cross-node dedup must be decided in one place, so this state does not shard; what later grows per
subscription (feeds) can take tags of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "alerthub"

    @property
    def core(self) -> str:
        """Prefix of every `{core}` key; the Lua scripts append `alert:<hub_id>` and the like."""
        return f"{self.prefix}:{{core}}:"

    # -- {core}: alerts and the event log
    def alert(self, hub_id: str) -> str:
        return f"{self.core}alert:{hub_id}"

    def cluster(self, cluster_id: str) -> str:
        return f"{self.core}cluster:{cluster_id}"

    def links(self, bucket: int) -> str:
        """Sorted set: which alerts carried each link key during one dedup window (bucket = unix
        time // window); an entry "<hub_id>:<n>" per link key of an alert, scored by the key's
        hash (canon.link_score), so ZRANGEBYSCORE of one score finds the alerts sharing it. One
        key per window rather than a set per link key: storing an alert costs one ZADD, not an
        SADD and an EXPIRE per link key, and Redis keeps one key instead of several per alert."""
        return f"{self.core}links:{bucket}"

    def similar(self, bucket: int) -> str:
        """Sorted set: the similarity index of one dedup window (bucket as for `links`): an
        entry "<hub_id>:<n>" per index score of an alert's claims (MinHash bands, entity
        pairs: hub.ingest.similarity.signature.index_scores), scored by it, so that
        ZRANGEBYSCORE of one score finds the alerts whose claims may be alike. Written by the
        store script with the alert (the `sim` and `sim_n` fields of its record)."""
        return f"{self.core}similar:{bucket}"

    @property
    def sender_ids(self) -> str:
        """Hash: "<sender>|<sender's alert id>" -> hub_id ("|" is in neither id alphabet)."""
        return f"{self.core}sender-ids"

    def fingerprint_reports(self, fp: str) -> str:
        """Sorted set: the live reports that carry content fingerprint `fp`, each scored by the
        log position of the event that gave it that content (ms * 1000 + sequence, so in the
        order Redis ran them); entries older than the dedup window are pruned as it is written.
        Dedup answers from the earliest of them that the sender may see (dedup.py).
        The store script builds the same name from the tag prefix ("fpr:" + fingerprint)."""
        return f"{self.core}fpr:{fp}"

    def audience(self, name: str) -> str:
        """Sorted set (every score 0, hub ids in time order) of the alerts filed under one
        listing index: "all", "gov", "id:<node>", "cc:<country>" (policy.Sharing.audiences).
        The store script builds the same name from the tag prefix ("aud:" + name)."""
        return f"{self.core}aud:{name}"

    @property
    def audiences_built(self) -> str:
        """Set once every alert stored before the listing indexes existed has been filed."""
        return f"{self.core}audiences-built"

    def fact_check(self, fact_check_id: str) -> str:
        """Hash: one fact-check (fact_checks.py): its doc, checker, the alert it was posted on
        (`hub_id`) and that alert's cluster then, revision, status. The fact-check scripts build
        the same name from the tag prefix ("fc:" + id)."""
        return f"{self.core}fc:{fact_check_id}"

    @property
    def checker_ids(self) -> str:
        """Hash: "<checker>|<checker's fact-check id>" -> fact-check id (resend / update)."""
        return f"{self.core}checker-ids"

    def cluster_fact_checks(self, cluster_id: str) -> str:
        """Sorted set (every score 0, fact-check ids in time order): the fact-checks posted on
        reports of one cluster. Built by the scripts from the tag prefix ("cfc:" + cluster)."""
        return f"{self.core}cfc:{cluster_id}"

    @property
    def recent(self) -> str:
        """Sorted set, every score 0, members are hub ids (time-ordered ULIDs): newest last."""
        return f"{self.core}recent"

    @property
    def events(self) -> str:
        """The event log stream that fan-out consumes."""
        return f"{self.core}events"

    @property
    def cursor_key(self) -> str:
        """The secret that seals listing cursors, shared by every hub process."""
        return f"{self.core}cursor-key"

    @property
    def ingest_counts(self) -> str:
        """Hash: hub-wide totals per outcome (created, corroborated, updated, retracted) and of
        refusals (`rejected`, `rejected:<error code>`)."""
        return f"{self.core}ingest-counts"

    def ingest_minute(self, minute: int) -> str:
        """Hash: one minute's counts per outcome (minute = unix time // 60); kept two hours.
        The store script builds the same name from the tag prefix."""
        return f"{self.core}ingest-minute:{minute}"

    def sharing_hour(self, hour: int) -> str:
        """Hash: reports stored per sender country in one hour (hour = unix time // 3600);
        kept two days. The store script builds the same name from the tag prefix."""
        return f"{self.core}sharing-hour:{hour}"

    def node_stats(self, node_id: str) -> str:
        """Hash: a node's `posted` and `rejected` counts and when it was `last_seen`."""
        return f"{self.core}node-stats:{node_id}"

    # -- nodes, tokens, rate counters
    def node(self, node_id: str) -> str:
        return f"{self.core}node:{node_id}"

    @property
    def node_ids(self) -> str:
        return f"{self.core}node-ids"

    def token(self, key_id: str) -> str:
        return f"{self.core}token:{key_id}"

    def rate(self, node_id: str, minute: int) -> str:
        return f"{self.core}rate:{node_id}:{minute}"

    def sse_streams(self, node_id: str) -> str:
        """Sorted set: one member per SSE stream the node has open (in any hub process), scored
        by the Redis time in ms when its lease lapses (sse_slots.py)."""
        return f"{self.prefix}:{{sse:{node_id}}}:streams"

    # -- {core}: subscriptions and the fan-out's lease
    @property
    def subscriptions(self) -> str:
        """Hash: subscription id -> the subscription's JSON."""
        return f"{self.core}subscriptions"

    @property
    def subscriptions_version(self) -> str:
        """Counter bumped by every change to a subscription, so caches know when to reload."""
        return f"{self.core}subscriptions-version"

    def fanout_lease(self, shards: int, shard: int) -> str:
        """Which hub process fans out one shard now (fanout.py); read in one step with the
        event log, so it lives in the log's slot."""
        return f"{self.core}fanout-lease:{shards}:{shard}"

    @property
    def delivery_members(self) -> str:
        """Sorted set: the live delivery processes, each scored by the Redis time in ms when
        its membership lapses (members.py); they share the shards and webhook workers."""
        return f"{self.core}delivery-members"

    @property
    def feed_news(self) -> str:
        """Pub/sub channel: comma-separated ids of subscriptions whose feeds just grew."""
        return f"{self.prefix}:feed-news"

    @property
    def node_revoked(self) -> str:
        """Pub/sub channel: the id of a node just revoked (revoke_node_lua publishes it), so
        that every hub process ends that node's event streams at once."""
        return f"{self.prefix}:node-revoked"

    # -- {sub:<id>}: one subscription's feed and delivery state, one slot per subscription
    def _sub(self, sub_id: str) -> str:
        return f"{self.prefix}:{{sub:{sub_id}}}:"

    def feed(self, sub_id: str) -> str:
        """Stream of the subscription's events; each entry's id is the event log id it came from."""
        return f"{self._sub(sub_id)}feed"

    def feed_state(self, sub_id: str) -> str:
        """Hash: `last` (newest log id fanned in), `trimmed_upto` (newest id trimmed away),
        `c:<cluster_id>` and `h:<hub_id>` (clusters and reports this subscription received)."""
        return f"{self._sub(sub_id)}feed-state"

    def delivery(self, sub_id: str) -> str:
        """Hash: webhook delivery state (cursor, failures, last delivery, verification)."""
        return f"{self._sub(sub_id)}delivery"

    def delivery_lease(self, sub_id: str) -> str:
        return f"{self._sub(sub_id)}delivery-lease"

    def retries(self, sub_id: str) -> str:
        """Sorted set: event ids waiting for another webhook attempt, scored by when (ms)."""
        return f"{self._sub(sub_id)}retries"

    def retry_info(self, sub_id: str) -> str:
        """Hash: event id -> JSON of the event and its attempts so far."""
        return f"{self._sub(sub_id)}retry-info"

    def dead_letters(self, sub_id: str) -> str:
        """Hash: event id -> JSON of an event that failed every attempt."""
        return f"{self._sub(sub_id)}dead-letters"

    def deleted(self, sub_id: str) -> str:
        """String, set for a while when the subscription is deleted: a fan-out or a delivery
        still at work with the old subscription list finds it and writes nothing, so the keys
        deleted with the subscription do not come back (no one would delete them again)."""
        return f"{self._sub(sub_id)}deleted"

    def feed_key(self, sub_id: str) -> str:
        """String: the SHA-256 of the subscription's read-only feed key (atom.py), if it has one."""
        return f"{self._sub(sub_id)}feed-key"

    def mail_tokens(self, sub_id: str) -> str:
        """Hash: an e-mail subscription's confirmation (`confirm_hash`, `confirm_sent_ms`, the
        address it was sent to) and digest state (email_delivery.py)."""
        return f"{self._sub(sub_id)}mail"

    def subscription_keys(self, sub_id: str) -> list[str]:
        """Every per-subscription key, for deletion (the `deleted` marker stays behind)."""
        return [
            self.feed(sub_id),
            self.feed_state(sub_id),
            self.delivery(sub_id),
            self.delivery_lease(sub_id),
            self.retries(sub_id),
            self.retry_info(sub_id),
            self.dead_letters(sub_id),
            self.feed_key(sub_id),
            self.mail_tokens(sub_id),
        ]


def links_bucket_now(window_s: int) -> int:
    """The dedup window whose link index (Keys.links) is written to now."""
    return int(time.time()) // window_s
