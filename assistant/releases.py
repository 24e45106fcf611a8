"""Releasing adapters: promote, roll back, archive, A/B. Admins only, every act audited.

The registry (`finetune.registry`) and the A/B table (`finetune.ab`) hold the
state; this service is the one door to changing it, whichever door the admin
uses (UI, CLI).
"""
from __future__ import annotations

from assistant.actor import Actor, require
from assistant.audit import AuditLog
from finetune.ab import ABTests
from finetune.registry import AdapterRegistry


class ReleaseService:
    def __init__(self, registry: AdapterRegistry, ab: ABTests, audit: AuditLog, base_model_hash) -> None:
        self.registry = registry
        self.ab = ab
        self.audit = audit
        self._base_model_hash = base_model_hash  # a callable: hashing the weights is only done when needed

    def promote(self, actor: Actor, version: str, force: bool = False, reason: str | None = None) -> dict:
        require(actor, "admin")
        # The promotion and its audit row commit together: a crash between them cannot leave either alone.
        return self.registry.promote(version, actor.id, self._base_model_hash(), force, reason, within=lambda conn:
                                     self.audit.record(actor, "promote", version, within=conn, forced=force,
                                                       reason=reason))

    def rollback(self, actor: Actor, reason: str | None = None) -> str | None:
        require(actor, "admin")
        return self.registry.rollback(actor.id, reason, within=lambda conn, undone, now: self.audit.record(
            actor, "rollback", undone, within=conn, now_serving=now, reason=reason))

    def archive(self, actor: Actor, version: str) -> dict:
        require(actor, "admin")
        adapter = self.registry.archive(version, actor.id)
        self.audit.record(actor, "archive", version)
        return adapter

    def start_ab(self, actor: Actor, version: str, share: float, force: bool = False,
                 reason: str | None = None) -> dict:
        require(actor, "admin")
        self.registry.check_servable(version, self._base_model_hash(), force, reason)
        test = self.ab.start(version, share, actor.id, self.registry.serving_version())
        self.audit.record(actor, "ab_started", version, share=share, forced=force)
        return test

    def stop_ab(self, actor: Actor) -> dict:
        require(actor, "admin")
        test = self.ab.stop(actor.id)
        self.audit.record(actor, "ab_stopped", test.get("candidate"))
        return test
