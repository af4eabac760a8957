"""Type stubs of the C extension fpc._fastpath (sources in csrc/)."""

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

def decode_batch(
    data: Buffer,
    offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    linktype: npt.NDArray[np.uint16],
    out: npt.NDArray[np.void],
) -> None:
    """Decode packet i = data[offset[i]:offset[i] + caplen[i]] into out[i].

    `out` has the dtype fpc.decode.DECODED (checked: a layout mismatch raises
    ValueError). The GIL is released while the packets are decoded.
    """

def pack_records(
    data: Buffer,
    offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
    ts_ns: npt.NDArray[np.int64],
    precision: int,
) -> bytes:
    """Classic-pcap records (16-byte little-endian header + bytes) of every packet.

    `precision` is 6 (microsecond timestamps) or 9 (nanosecond timestamps).
    """
