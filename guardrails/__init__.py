"""Governance layer: Presidio PII redaction, then policy checks on input and output.

Every check is one file under `guardrails/checks/`, registered by name; the
policy YAML lists which run, in order, with their parameters. Any error in a
check blocks the turn and flags it (fail closed).
"""
from guardrails.verdict import Action, CheckResult, Entity, InputVerdict, OutputVerdict

__all__ = ["Action", "CheckResult", "Entity", "InputVerdict", "OutputVerdict"]
