"""`mekong load` reads a participant's JSON lines and refuses, naming file and line, what the switch
would dead-letter without telling the participant; nothing is published then."""

from __future__ import annotations

import json

import pytest

from switch import limits
from switch.entrypoints.load import LoadRefused, read_instructions
from tests.factories import sample_instruction

ME = "ACLBKHPPXXX"


def _line(**changes: object) -> bytes:
    return json.dumps(sample_instruction(**changes)).encode() + b"\n"


def test_each_line_is_published_as_its_exact_bytes_keyed_by_its_instruction_id() -> None:
    one, two = _line(instruction_id="A-1"), b"  " + _line(instruction_id="A-2")
    records = read_instructions("f.jsonl", [b"# a comment\n", one, b"\n", two], participant=ME)
    assert [(r.line, r.key, r.value) for r in records] == [(2, b"A-1", one.strip()), (4, b"A-2", two.strip())]


def test_every_bad_line_is_named_with_its_reason() -> None:
    lines = [
        _line(instruction_id="OK-1"),
        b"{not json\n",
        b"[1, 2]\n",
        _line(instruction_id="THEIRS", participant="ABAAKHPPXXX"),
        json.dumps({k: v for k, v in sample_instruction().items() if k != "instruction_id"}).encode(),
        b'{"participant": "ACLBKHPPXXX", "instruction_id": "BIG", "x": "' + b"a" * limits.json_bytes_max + b'"}',
    ]
    with pytest.raises(LoadRefused) as refused:
        read_instructions("f.jsonl", lines, participant=ME)
    assert refused.value.problems == [
        "f.jsonl:2: not JSON (Expecting property name enclosed in double quotes)",
        "f.jsonl:3: not a JSON object (an instruction v1 is one)",
        "f.jsonl:4: names participant 'ABAAKHPPXXX', but it would be signed with ACLBKHPPXXX's key (the switch dead-letters it: DS0H)",
        "f.jsonl:5: no instruction_id (the record's key)",
        f"f.jsonl:6: {len(lines[5])} bytes, over the switch's {limits.json_bytes_max} (it refuses them: FF01)",
    ]
