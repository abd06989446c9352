"""The surveys' short names, the one place outside the adapters where they are spelled.

Code that declares which survey it serves (a science module's or a filter's ``surveys=``)
names it through these constants, so a test can check that no survey name is written as a
literal anywhere else and that services take the survey from their adapter.

>>> ZTF_NAME, RUBIN_NAME
('ztf', 'rubin')
"""

from __future__ import annotations

#: the Zwicky Transient Facility (adapter ``surveys.ztf``)
ZTF_NAME = "ztf"
#: the Rubin Observatory's LSST (adapter ``surveys.rubin``)
RUBIN_NAME = "rubin"

#: every survey Fink has an adapter for (``surveys.ADAPTERS`` holds one per name): the
#: choices of the CLI's ``--survey``, importable without the adapters' dependencies
SURVEY_NAMES: tuple[str, ...] = (ZTF_NAME, RUBIN_NAME)
