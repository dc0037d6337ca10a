"""LAPNet (Laos): what its profile cannot say as data.

Nothing yet: pacs.008.001.08 with the clearing system LAPNET (Prtry), 8-digit IINs ending 0418
under ClrSysId/Prtry LAPNET, whole kip, and Latin names are all in config/partners/lapnet.toml and
applied by the shared IsoMapping. This class is the place for a LAPNet quirk that data cannot
express, when one is handed over.
"""

from __future__ import annotations

from adapters.iso_mapping import IsoMapping


class LapnetMapping(IsoMapping):
    pass
