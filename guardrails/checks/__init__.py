"""One check per module; importing this package registers them all."""
from guardrails.checks import banned_topics, length, output_pii, prompt_injection  # noqa: F401
