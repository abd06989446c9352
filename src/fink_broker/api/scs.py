"""IVOA Simple Cone Search 1.03: ``/scs?RA=&DEC=&SR=`` answered as a VOTable.

The standard asks for ``RA``, ``DEC`` and ``SR`` in decimal degrees (ICRS), one row per
source, and exactly one column with each of the UCDs ``ID_MAIN``, ``POS_EQ_RA_MAIN`` and
``POS_EQ_DEC_MAIN`` (RA and DEC as doubles in degrees). A source here is an archived
object, at the position of its newest alert in the cone. An error is a VOTable holding an
``INFO`` named ``Error`` whose value says what is wrong, with HTTP 200 as the standard
has it: VO clients (pyvo, astroquery, TOPCAT) read the error from the document.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_broker.api.formats import votable_bytes

#: (column of the answer, its UCD (SCS 1.03 is UCD1), unit, description)
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("objectId", "ID_MAIN", "", "object identifier (Fink's)"),
    ("ra", "POS_EQ_RA_MAIN", "deg", "right ascension of the newest alert in the cone (ICRS)"),
    ("dec", "POS_EQ_DEC_MAIN", "deg", "declination of the newest alert in the cone (ICRS)"),
    ("alertId", "ID_NUMBER", "", "the alert (ZTF candid, Rubin diaSourceId)"),
    ("mjd", "TIME_DATE", "d", "time of the alert, MJD"),
    ("band", "INST_FILTER_CODE", "", "photometric band"),
    ("mag", "PHOT_MAG", "mag", "PSF magnitude of the difference"),
    ("separation", "POS_ANG_DIST_GENERAL", "arcsec", "distance to the cone's centre"),
)
MEDIA_TYPE = "text/xml"


def _document(table):
    from astropy.io.votable.tree import Resource, VOTableFile

    document = VOTableFile(version="1.3")
    resource = Resource()
    document.resources.append(resource)
    if table is not None:
        resource.tables.append(table)
    return document, resource


def _xml(document) -> bytes:
    return votable_bytes(document)


def error(message: str) -> bytes:
    """The VOTable of a failed query (SCS 1.03, section 3)."""
    from astropy.io.votable.tree import Info

    document, resource = _document(None)
    resource.infos.append(Info(name="Error", value=message))
    document.infos.append(Info(name="QUERY_STATUS", value="ERROR", content=message))
    return _xml(document)


def votable(frame: pd.DataFrame) -> bytes:
    """The VOTable of the sources found (columns named as :data:`FIELDS`)."""
    import warnings

    from astropy.io.votable.exceptions import VOWarning
    from astropy.io.votable.tree import Field, TableElement

    document, resource = _document(None)
    table = TableElement(document, name="results")
    resource.tables.append(table)
    for name, ucd, unit, doc in FIELDS:
        text = name in ("objectId", "band")
        field = Field(
            document,
            name=name,
            ID=name,
            ucd=ucd,
            unit=unit or None,
            datatype="char" if text else ("long" if name == "alertId" else "double"),
            arraysize="*" if text else None,
        )
        field.description = doc
        table.fields.append(field)
    table.create_arrays(len(frame))
    for name, *_ in FIELDS:
        values = frame[name] if name in frame.columns else pd.Series([None] * len(frame))
        if name in ("objectId", "band"):
            table.array[name] = np.array(
                ["" if x is None or pd.isna(x) else str(x) for x in values], dtype=object
            )
        elif name == "alertId":
            table.array[name] = (
                pd.to_numeric(values, errors="coerce").fillna(-1).astype(np.int64).to_numpy()
            )
        else:
            table.array[name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    with warnings.catch_warnings():
        # UCD1 words are what SCS 1.03 requires; astropy checks UCD1+ and warns
        warnings.simplefilter("ignore", VOWarning)
        return _xml(document)
