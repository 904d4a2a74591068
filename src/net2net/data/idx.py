"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "read_idx"]

# type code (third magic byte) -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into a native-endian numpy array.

    The file may be gzip-compressed (detected from its first bytes, not its name). The magic
    number ``00 00 TT DD`` gives the element type ``TT`` and the number of dimensions ``DD``,
    followed by ``DD`` big-endian uint32 sizes and the data.

    Arguments:
        path: the file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
        An array of shape given by the header (uint8 for image and label files).

    Raises:
        ValueError: bad magic number, unknown type code, or a data length that does not match the header.

    Example:
        >>> import tempfile, os
        >>> raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(raw)
        >>> read_idx(f.name).tolist()
        [7, 8, 9]
        >>> os.remove(f.name)
    """
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        if compressed:
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot decompress IDX file ({e})") from e

    if len(data) < 4:
        raise ValueError(f"{path}: file of {len(data)} bytes is too short for an IDX header (4-byte magic number)")
    magic = int.from_bytes(data[:4], "big")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08X}; expected 0x0000TTDD with type code TT in "
            f"{{{', '.join(f'0x{t:02X}' for t in IDX_DTYPES)}}} and DD >= 1 dimensions "
            "(e.g. 0x00000803 = 2051 for images, 0x00000801 = 2049 for labels)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: header declares {ndim} dimensions but the file has only {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} of {dtype.name} ({expected} data bytes) but the file holds "
            f"{len(data) - header} data bytes (truncated or corrupt file?)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=dtype.itemsize > 1)
