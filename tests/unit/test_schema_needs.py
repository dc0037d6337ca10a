"""Which XSDs a configuration needs (`mekong schemas verify --config-dir`, run by the image build):
every version the partner profiles name, and the switch's own."""

from __future__ import annotations

from adapters.schema_needs import SWITCH_OWN, messages_of, needed_by, profiles_in, unknown_to
from iso20022.schemas import load_manifest
from switch.config import DEFAULT_CONFIG_DIR


def test_the_shipped_profiles_name_their_message_versions() -> None:
    profiles = profiles_in(DEFAULT_CONFIG_DIR)
    assert sorted(profiles) == ["lapnet", "napas", "promptpay", "unionpay"]
    promptpay = messages_of(profiles["promptpay"])
    assert {"pacs.008.001.13", "pacs.002.001.10", "pacs.028.001.03", "pacs.004.001.10", "camt.056.001.08",
            "camt.029.001.09", "camt.053.001.08", "head.001.001.02"} <= promptpay


def test_the_shipped_configuration_needs_only_pinned_xsds() -> None:
    needs = needed_by(profiles_in(DEFAULT_CONFIG_DIR))
    assert SWITCH_OWN <= set(needs) and needs["pain.001.001.09"] == frozenset({"switch"})
    assert unknown_to(load_manifest().entries, needs) == []


def test_a_profile_naming_an_unpinned_version_is_reported_with_who_needs_it() -> None:
    profiles = profiles_in(DEFAULT_CONFIG_DIR)
    profiles["napas"] = profiles["napas"].model_copy(update={"pacs008_version": "pacs.008.001.09"})
    problems = unknown_to(load_manifest().entries, needed_by(profiles))
    assert problems == ["pacs.008.001.09 (needed by napas) is not in the schema manifest"]
