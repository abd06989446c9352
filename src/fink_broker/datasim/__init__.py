"""``fink datasim download``: real alerts of a past night, for the simulator to replay.

The ZTF public alert archive serves one tarball of Avro alert files per night
(``datasim.archive_url``, ``{night}`` = YYYYMMDD). ``night.download_night`` fetches it
(resumable: :mod:`~fink_broker.datasim.fetch`), checks it whole and unpacks it into
``<datasim.folder>/<night>/`` (:mod:`~fink_broker.datasim.unpack`), the folder that
``fink simulator --datasim`` reads.
"""
