"""Which mapping class serves which partner; profiles come from `config/partners/<id>.toml`.
(Each partner's simulator is registered next to the simulators: adapters/simulator.py SIMULATORS.)"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from adapters.base import PartnerExceptions, PartnerProfile, load_profile
from adapters.iso_mapping import IsoMapping
from adapters.lapnet.mapping import LapnetMapping
from adapters.napas.mapping import NapasMapping
from adapters.promptpay.mapping import PromptPayMapping
from adapters.unionpay.mapping import UnionPayMapping

MAPPINGS: dict[str, type[IsoMapping]] = {
    "promptpay": PromptPayMapping,
    "lapnet": LapnetMapping,
    "napas": NapasMapping,
    "unionpay": UnionPayMapping,
}


def profile_path(config_dir: Path, partner: str) -> Path:
    return config_dir / "partners" / f"{partner}.toml"


def load_partners(
    config_dir: Path,
    partners: set[str],
    *,
    switch_bic: str,
    base_urls: Mapping[str, str] | None = None,
    timing: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, IsoMapping]:
    """The mapping for each partner that an enabled corridor names; `timing` overrides a
    profile's sla_s / resend_after_s / timeout_s, its [exceptions] timings and its [settlement]
    every_s (as settlement_every_s), validated like the file."""
    out: dict[str, IsoMapping] = {}
    for partner in sorted(partners):
        if partner not in MAPPINGS:
            raise ValueError(f"no adapter for partner {partner!r}; known: {sorted(MAPPINGS)}")
        profile: PartnerProfile = load_profile(
            profile_path(config_dir, partner), base_url=(base_urls or {}).get(partner)
        )
        if (timing or {}).get(partner):
            data = profile.model_dump()
            overrides = dict(timing[partner])  # type: ignore[index]
            # [exceptions] timings (issue 9: enquire_after_s, enquiry_interval_s_max, ...) go in their table
            exceptions = {k: overrides.pop(k) for k in list(overrides) if k in PartnerExceptions.model_fields}
            data["exceptions"] = {**data["exceptions"], **exceptions}
            # MEKONG_PARTNER_SETTLEMENT_EVERY_S_<PARTNER> (issue 10): [settlement] every_s
            if "settlement_every_s" in overrides:
                every_s = overrides.pop("settlement_every_s")
                if data.get("settlement") is None:
                    raise ValueError(f"partner {partner!r}: settlement_every_s given, but its profile has no [settlement]")
                data["settlement"] = {**data["settlement"], "every_s": every_s}
            profile = PartnerProfile.model_validate({**data, **overrides})
        out[partner] = MAPPINGS[partner](profile, switch_bic=switch_bic)
    return out
