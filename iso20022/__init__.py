"""ISO 20022 messages for the switch: official schemas, hardened parsing, builders and parsers.

The lower layer: it imports nothing from switch/, adapters/ or fx/.
"""
