"""In-band DTMF: a streaming numpy detector and a tone generator."""

from .detector import DtmfDetector, DtmfSettings, KeyTone, MultiStreamDtmfDetector, detect
from .tones import KEY_FREQUENCIES, dbm0_to_amplitude

__all__ = ["DtmfDetector", "DtmfSettings", "KeyTone", "MultiStreamDtmfDetector", "detect",
           "KEY_FREQUENCIES", "dbm0_to_amplitude"]
