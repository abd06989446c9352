"""Hadoop-style configuration files: ``hbase-site.xml``, ``core-site.xml``, ``hdfs-site.xml``.

HBase and HDFS read ``<configuration><property><name/><value/></property>...`` from their
class path; Fink writes them from the settings at each start, so that the settings stay the
one place to edit.

>>> print(site_xml({"dfs.replication": "1"}), end="")  # doctest: +NORMALIZE_WHITESPACE
<?xml version="1.0"?>
<!-- Written by Fink at each start: edit the settings -->
<configuration>
  <property><name>dfs.replication</name><value>1</value></property>
</configuration>
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape


def site_xml(properties: Mapping[str, str]) -> str:
    """The text of a Hadoop ``*-site.xml`` holding ``properties``."""
    body = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n"
        for k, v in properties.items()
    )
    return (
        '<?xml version="1.0"?>\n'
        "<!-- Written by Fink at each start: edit the settings -->\n"
        f"<configuration>\n{body}</configuration>\n"
    )
