"""A talk-off corpus: speech that must never be heard as a key, made with espeak-ng.

Sentences full of numbers (what callers say on this line) and sustained vowels, in
Spanish and English, over many voices, variants, rates and pitches. The suite makes the
corpus itself (nothing is downloaded), at 8 kHz, deterministically for a given seed.
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SENTENCES = {
    "es": [
        "Mi número de documento es el doce millones trescientos cuarenta y cinco mil seiscientos setenta y ocho.",
        "La referencia de la operación es dos cero dos seis, uno uno dos nueve, cero cero uno.",
        "Los cuatro últimos dígitos de mi tarjeta son siete, cinco, tres y nueve.",
        "Quiero desbloquear mi usuario de banca electrónica, tengo DNI.",
        "Llamo desde el seiscientos, once, veintidós, treinta y tres, cuarenta y cuatro.",
        "Uno, dos, tres, cuatro, cinco, seis, siete, ocho, nueve y cero.",
        "El importe era de mil doscientos cuarenta euros con noventa y nueve céntimos.",
        "Operador, por favor, no entiendo el menú y necesito ayuda ahora mismo.",
        "Mi tarjeta termina en ochocientos sesenta y cuatro, y el pin no lo recuerdo.",
        "Asterisco, almohadilla, repita la opción número cuatro, por favor.",
    ],
    "en": [
        "My card number ends in four five six seven, and my phone is six hundred eleven.",
        "The operation reference is two zero two six, one one two nine, zero zero one.",
        "I want to recover my online banking user, I have an NIE, X one two three.",
        "One, two, three, four, five, six, seven, eight, nine, and zero.",
        "Please put me through to an agent, I have been waiting for twenty minutes.",
        "The amount was one thousand two hundred and forty euros and ninety nine cents.",
        "Press star to repeat, press hash to go back, or press zero for an operator.",
        "My date of birth is the twenty third of November, nineteen eighty seven.",
        "Could you say that again more slowly, I did not catch the last four digits.",
        "Hello, good morning, I am calling because my signature key is blocked.",
    ],
}
VOICES = {"es": ["es", "es-419"], "en": ["en-us", "en-gb", "en-gb-scotland"]}
VARIANTS = ["", "m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt", "croak"]
RATES = [120, 160, 200, 260]
PITCHES = [10, 35, 60, 90]
VOWELS = {"es": ["a", "e", "i", "o", "u"], "en": ["A:", "i:", "u:", "3:", "O:"]}


@dataclass(frozen=True)
class Utterance:
    language: str
    voice: str
    rate: int
    pitch: int
    text: str
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.samples) / 8000


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """espeak-ng's rendering of ``text`` at 8 kHz, float full scale 1.0."""
    import soundfile
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
        capture_output=True, check=True, timeout=60,
    ).stdout
    samples, rate_in = soundfile.read(io.BytesIO(wav), dtype="float64")
    return soxr.resample(samples, rate_in, 8000)


def corpus(minutes: float = 20.0, seed: int = 7) -> Iterator[Utterance]:
    """At least ``minutes`` of speech: sentences in every voice and setting, then vowels."""
    rng = np.random.default_rng(seed)
    settings = list(itertools.product(("es", "en"), VARIANTS, RATES, PITCHES))
    rng.shuffle(settings)
    total = 0.0
    index = 0
    while total < minutes * 60:
        lang, variant, rate, pitch = settings[index % len(settings)]
        voice = VOICES[lang][index % len(VOICES[lang])] + (f"+{variant}" if variant else "")
        if index % 5 == 4:
            # A vowel held as long as espeak-ng holds one (about 1.5 s at its slowest rate,
            # twice over): the classic talk-off trap, a steady tone with harmonics.
            vowel = VOWELS[lang][index % len(VOWELS[lang])]
            text = f"[[{vowel}{':' * 12}{vowel}{':' * 12}]]"
            rate = 80
        else:
            text = SENTENCES[lang][index % len(SENTENCES[lang])]
        samples = speak(text, voice, rate, pitch)
        total += len(samples) / 8000
        index += 1
        yield Utterance(lang, voice, rate, pitch, text, samples)
