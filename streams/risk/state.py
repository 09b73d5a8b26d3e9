"""What every worker knows in full: merchant profiles and the live rule set.

Both come from small topics that each worker reads whole (not as a consumer-group member), so
a rule-set version published on the log reaches every running worker without a restart.
"""

from __future__ import annotations

import logging
from importlib import resources

from events.records import AvroRecord
from events.risk_records import MerchantEvent, RuleSetPublished
from streams.risk.merchants import MerchantProfile, apply_merchant_event
from streams.risk.rule_file import RuleSetError, parse_ruleset
from streams.risk.ruleset import RuleSet

log = logging.getLogger(__name__)

DEFAULT_RULES = "default.rules"


def default_ruleset() -> RuleSet:
    """The rule set shipped with paystream, live until a version is published."""
    text = resources.files("streams.risk").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
    return parse_ruleset(text, source=DEFAULT_RULES)


class RiskState:
    """Merchant profiles and rule sets, folded from their topics in log order."""

    def __init__(self, ruleset: RuleSet | None = None) -> None:
        self.merchants: dict[str, MerchantProfile] = {}
        self.ruleset = ruleset or default_ruleset()
        self.published: dict[int, RuleSet] = {}

    def apply(self, record: AvroRecord) -> None:
        """Fold one record of the merchants or rule-set topic."""
        if isinstance(record, RuleSetPublished):
            self._publish(record)
        elif isinstance(record, MerchantEvent):
            merchant = record.merchant_id
            self.merchants[merchant] = apply_merchant_event(self.merchants.get(merchant), record)

    def merchant(self, merchant_id: str) -> MerchantProfile | None:
        """The merchant's profile, or None when it never applied."""
        return self.merchants.get(merchant_id)

    def _publish(self, record: RuleSetPublished) -> None:
        try:
            ruleset = parse_ruleset(record.text, source=f"published version {record.version}")
        except RuleSetError as error:
            # Publishing validates first; a bad version on the log keeps the previous one live.
            log.error(
                "rule set version %s is invalid and was not applied: %s", record.version, error
            )
            return
        self.published[ruleset.version] = ruleset
        self.ruleset = ruleset
