"""Every Redis key the hub uses, under one configurable prefix.

Two hash tags: `{core}` holds everything the ingest script must decide on atomically (alerts, the
sender-id index, fingerprints, clusters, links, the recent index and the event log), so that the
script touches one Redis Cluster slot; `{nodes}` holds nodes, tokens and rate counters. The scripts
build member keys (an alert, a cluster, a link set) from the tag prefix they are given, which stays
inside the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "alerthub"

    @property
    def core(self) -> str:
        """Prefix of every `{core}` key; the Lua scripts append `alert:<hub_id>` and the like."""
        return f"{self.prefix}:{{core}}:"

    @property
    def nodes_tag(self) -> str:
        return f"{self.prefix}:{{nodes}}:"

    # -- {core}: alerts and the event log
    def alert(self, hub_id: str) -> str:
        return f"{self.core}alert:{hub_id}"

    def cluster(self, cluster_id: str) -> str:
        return f"{self.core}cluster:{cluster_id}"

    def link(self, link_key: str) -> str:
        return f"{self.core}link:{link_key}"

    @property
    def sender_ids(self) -> str:
        """Hash: "<sender>|<sender's alert id>" -> hub_id ("|" is in neither id alphabet)."""
        return f"{self.core}sender-ids"

    def fingerprint(self, fp: str) -> str:
        return f"{self.core}fp:{fp}"

    @property
    def recent(self) -> str:
        """Sorted set, every score 0, members are hub ids (time-ordered ULIDs): newest last."""
        return f"{self.core}recent"

    @property
    def events(self) -> str:
        """The event log stream that fan-out consumes."""
        return f"{self.core}events"

    @property
    def ingest_counts(self) -> str:
        return f"{self.core}ingest-counts"

    # -- {nodes}: nodes, tokens, rate counters
    def node(self, node_id: str) -> str:
        return f"{self.nodes_tag}node:{node_id}"

    @property
    def node_ids(self) -> str:
        return f"{self.nodes_tag}node-ids"

    def token(self, key_id: str) -> str:
        return f"{self.nodes_tag}token:{key_id}"

    def rate(self, node_id: str, minute: int) -> str:
        return f"{self.nodes_tag}rate:{node_id}:{minute}"
