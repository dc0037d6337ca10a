"""Partner timings from the environment (MEKONG_PARTNER_<FIELD>_<PARTNER>), as the demo and the
drills set them: they reach the partner's profile, the [exceptions] ones in their table."""

from __future__ import annotations

from pathlib import Path

from adapters.registry import load_partners
from switch.config import DEFAULT_CONFIG_DIR, load


def test_recall_and_enquiry_timings_from_the_environment_reach_the_profile() -> None:
    env = {"MEKONG_PARTNER_ENQUIRE_AFTER_S_LAPNET": "6", "MEKONG_PARTNER_RECALL_SLA_S_LAPNET": "12",
           "MEKONG_PARTNER_RECALL_CHASE_AFTER_S_LAPNET": "4", "MEKONG_PARTNER_RECALL_REPLY_S_NAPAS": "9",
           "MEKONG_PARTNER_SLA_S_NAPAS": "30"}
    cfg = load(DEFAULT_CONFIG_DIR, env=env)
    assert cfg.partner_timing == {"lapnet": {"enquire_after_s": 6.0, "recall_sla_s": 12.0, "recall_chase_after_s": 4.0},
                                  "napas": {"recall_reply_s": 9.0, "sla_s": 30.0}}
    mappings = load_partners(Path(cfg.config_dir), {"lapnet", "napas", "promptpay"}, switch_bic=cfg.switch.agent_bic,
                              timing=cfg.partner_timing)
    lapnet, napas, promptpay = (mappings[p].profile for p in ("lapnet", "napas", "promptpay"))
    assert (lapnet.exceptions.enquire_after_s, lapnet.exceptions.recall_sla_s, lapnet.exceptions.recall_chase_after_s) == (6, 12, 4)
    assert napas.exceptions.recall_reply_s == 9 and napas.sla_s == 30 and napas.exceptions.recall_sla_s == 600
    assert promptpay.exceptions.recall_reply_s == 300 and promptpay.exceptions.enquire_after_s == 20
