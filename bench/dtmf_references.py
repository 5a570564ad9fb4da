"""The reference DTMF receivers the benchmark runs beside ours, on the very same signals.

- spandsp's ``dtmf_rx`` (Debian ``libspandsp2``), through ctypes, with its default settings
  (as FreeSWITCH and Asterisk-class systems run it). Signatures, identical in spandsp 0.0.6
  (Debian) and in the current freeswitch/spandsp ``src/spandsp/dtmf.h``::

      typedef void (*digits_rx_callback_t)(void *user_data, const char *digits, int len);
      dtmf_rx_state_t *dtmf_rx_init(dtmf_rx_state_t *s, digits_rx_callback_t callback, void *user_data);
      int dtmf_rx(dtmf_rx_state_t *s, const int16_t amp[], int samples);
      int dtmf_rx_free(dtmf_rx_state_t *s);

  (``dtmf_rx_parms`` changed its argument types between versions; it is not called: the
  point is spandsp as configured by default.) ``digits`` is not NUL-terminated: ``len``
  bytes are read.
- ``multimon-ng -a DTMF -t raw -``: signed 16-bit mono at 22,050 Hz on stdin (our 8 kHz
  signals are resampled with soxr), one ``DTMF: X`` line per key on stdout.

A receiver that is not installed is reported by :func:`spandsp_missing` /
:func:`multimon_missing` (a sentence saying why) and skipped by the benchmark.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import shutil
import subprocess
from typing import Self

import numpy as np

SPANDSP_LIBRARY = "libspandsp.so.2"
MULTIMON = "multimon-ng"
MULTIMON_RATE = 22050
FRAME = 160  # 20 ms at 8 kHz, the telephone frame

_DIGITS_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_int)
_spandsp: ctypes.CDLL | None = None
_spandsp_error: str | None = None


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as int16, as a line would carry them (clipped)."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return np.ascontiguousarray(x)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------- spandsp


def _load_spandsp() -> ctypes.CDLL | None:
    global _spandsp, _spandsp_error
    if _spandsp is not None or _spandsp_error is not None:
        return _spandsp
    try:
        lib = ctypes.CDLL(SPANDSP_LIBRARY)
        lib.dtmf_rx_init.restype = ctypes.c_void_p
        lib.dtmf_rx_init.argtypes = [ctypes.c_void_p, _DIGITS_CALLBACK, ctypes.c_void_p]
        lib.dtmf_rx.restype = ctypes.c_int
        lib.dtmf_rx.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.dtmf_rx_free.restype = ctypes.c_int
        lib.dtmf_rx_free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError) as error:
        _spandsp_error = (f"spandsp skipped: {SPANDSP_LIBRARY} could not be loaded ({error}); "
                          "install the Debian package libspandsp2")
        return None
    _spandsp = lib
    return lib


def spandsp_missing() -> str | None:
    """``None`` if spandsp's ``dtmf_rx`` can be used, else why not."""
    _load_spandsp()
    return _spandsp_error


class SpandspReceiver:
    """One ``dtmf_rx`` context with default settings; ``feed`` returns the keys it reported."""

    def __init__(self) -> None:
        lib = _load_spandsp()
        if lib is None:
            raise RuntimeError(_spandsp_error)
        self._lib = lib
        self._keys: list[bytes] = []
        # Kept as an attribute: the C side holds the pointer for the context's lifetime.
        self._callback = _DIGITS_CALLBACK(self._on_digits)
        state = lib.dtmf_rx_init(None, self._callback, None)
        if not state:
            raise RuntimeError("dtmf_rx_init returned NULL")
        self._state = ctypes.c_void_p(state)

    def _on_digits(self, _user_data: int | None, digits: ctypes.Array, length: int) -> None:
        self._keys.append(ctypes.string_at(digits, length))

    def feed(self, samples: np.ndarray, chunk: int = FRAME, binding: str = "address") -> str:
        """``samples`` (int16 or float full scale 1.0) in chunks of ``chunk`` samples (0: all at once).

        ``binding``: how each chunk reaches C. ``"address"`` passes the buffer's address plus
        an offset (the thinnest ctypes call); ``"data_as"`` slices the numpy array and converts
        each slice with ``.ctypes.data_as(POINTER(c_int16))``, as a straightforward binding
        does (about 4 µs more per call).
        """
        pcm = to_int16(samples)
        n = pcm.shape[0]
        step = chunk or max(n, 1)
        rx, state = self._lib.dtmf_rx, self._state
        if binding == "address":
            base = pcm.ctypes.data
            for start in range(0, n, step):
                rx(state, base + 2 * start, min(step, n - start))
        elif binding == "data_as":
            pointer = ctypes.POINTER(ctypes.c_int16)
            for start in range(0, n, step):
                frame = pcm[start:start + step]
                rx(state, frame.ctypes.data_as(pointer), len(frame))
        else:
            raise ValueError(f"binding is 'address' or 'data_as', not {binding!r}")
        return self.take()

    def take(self) -> str:
        keys = b"".join(self._keys).decode("ascii")
        self._keys.clear()
        return keys

    def close(self) -> None:
        if self._state:
            self._lib.dtmf_rx_free(self._state)
            self._state = ctypes.c_void_p()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown ctypes may be gone
            self.close()


def spandsp_keys(samples: np.ndarray, chunk: int = FRAME, binding: str = "address") -> str:
    """The keys a fresh default ``dtmf_rx`` reports for ``samples`` (8 kHz)."""
    with SpandspReceiver() as receiver:
        return receiver.feed(samples, chunk, binding)


# --------------------------------------------------------------------- multimon-ng

_MULTIMON_LINE = re.compile(r"^DTMF: (\S)\s*$", re.MULTILINE)


def multimon_missing() -> str | None:
    """``None`` if ``multimon-ng`` is on the PATH, else why not."""
    if shutil.which(MULTIMON) is None:
        return f"multimon-ng skipped: {MULTIMON} is not on the PATH; install the Debian package multimon-ng"
    return None


def multimon_input(samples: np.ndarray, rate: int = 8000) -> bytes:
    """``samples`` as multimon-ng's raw input: s16le mono at 22,050 Hz."""
    import soxr

    x = np.asarray(samples, dtype=np.float64)
    resampled = soxr.resample(x, rate, MULTIMON_RATE) if rate != MULTIMON_RATE else x
    return to_int16(resampled).astype("<i2").tobytes()


def multimon_run(pcm: bytes) -> str:
    """Run ``multimon-ng -a DTMF -t raw -`` over ``pcm`` (see :func:`multimon_input`); the keys."""
    result = subprocess.run([MULTIMON, "-a", "DTMF", "-t", "raw", "-"], input=pcm,
                            capture_output=True, check=True, timeout=600)
    return "".join(_MULTIMON_LINE.findall(result.stdout.decode("ascii", "replace")))


def multimon_keys(samples: np.ndarray, rate: int = 8000) -> str:
    return multimon_run(multimon_input(samples, rate))
