"""Errors that fpc reports to its users.

Every error names what failed, where, and one concrete fix::

    FpcError
     +-- ConfigError        bad setting in a config file or on the command line
     +-- CaptureError       an interface or capture file that cannot be read
     |    +-- CorruptCapture    a capture file damaged part-way (good records kept)
     +-- WriterError        a PCAP file that cannot be written
     +-- StoreError         the session store (SQLite or Elasticsearch) failed
     |    +-- IndexingError     records Elasticsearch refused or could not take
     +-- SessionNotFound    no session with that id
     +-- PcapUnavailable    the PCAP file holding a session is gone or unreadable
          +-- PacketsNotWritten  the capture could not write a session's packets
"""


class FpcError(Exception):
    """Base class of every error fpc raises on purpose."""


class ConfigError(FpcError):
    pass


class CaptureError(FpcError):
    pass


class CorruptCapture(CaptureError):
    """A capture file is damaged at `offset`; records before it were read."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"capture file {path} is corrupt at byte {offset}: {reason}; "
            "the records before it were processed, the rest of the file was skipped"
        )


class WriterError(FpcError):
    pass


class StoreError(FpcError):
    pass


class IndexingError(StoreError):
    pass


class SessionNotFound(FpcError):
    pass


class PcapUnavailable(FpcError):
    pass


class PacketsNotWritten(PcapUnavailable):
    pass
