"""Recall and false matches of IPX audio matching (Chromaprint + offset/BER) under common edits.

Run: .venv/bin/python bench/audio_robustness.py   (needs fpcalc and sox with mp3/ogg support:
apt-get install libchromaprint-tools sox libsox-fmt-all)

Corpus: CLIPS music-like clips of 20-40 s synthesised here (random tempo, key, melody over a held
triad, harmonics, decaying envelopes, noise-burst percussion), one seed per clip, so every pair is
distinct by construction. sox applies the edits. False matches are counted for every original and
every edited query against every work it was not derived from; the margin uses the lowest BER over
ALL offsets with >= MIN_OVERLAP_SECONDS of overlap (not only the index's candidate offsets), which is
the worst case a smarter candidate generator could ever expose.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipx.fingerprint import audio as afp

CLIPS = 24
RATE = 44100
SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
SILENT_INTRO_EVERY = 6


def synthesize(seed: int) -> np.ndarray:
    """Deterministic music-like mono signal, peak 0.5 so +6 dB does not clip."""
    rng = np.random.default_rng(seed)
    seconds = float(rng.uniform(20, 40))
    out = np.zeros(int(seconds * RATE))
    beat = 60 / rng.uniform(80, 160)
    root = int(rng.integers(40, 60))
    brightness = rng.uniform(0.1, 0.6)
    position = 0.0
    while position < seconds:
        duration = beat * float(rng.choice([0.5, 1, 1, 2]))
        start = int(position * RATE)
        t = np.arange(min(int(duration * RATE), len(out) - start)) / RATE
        note = root + 12 + SCALE[rng.integers(0, 7)] + 12 * int(rng.integers(0, 2))
        frequency = 440 * 2 ** ((note - 69) / 12)
        envelope = np.exp(-t * rng.uniform(1, 6))
        out[start : start + len(t)] += envelope * (
            np.sin(2 * np.pi * frequency * t) + brightness * np.sin(4 * np.pi * frequency * t)
        )
        chord_root = root + SCALE[rng.integers(0, 7)]
        for interval in (0, 4, 7):
            chord_frequency = 440 * 2 ** ((chord_root + interval - 69) / 12)
            out[start : start + len(t)] += 0.25 * np.sin(2 * np.pi * chord_frequency * t)
        if rng.random() < 0.3:
            burst = min(len(t), 2000)
            out[start : start + burst] += 0.6 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / 300)
        position += duration
    out = 0.5 * out / np.abs(out).max()
    if seed % SILENT_INTRO_EVERY == 0:  # silence must never be what two works have in common
        out = np.concatenate([np.zeros(4 * RATE), out])
    return out


def write_wav(path: Path, signal: np.ndarray) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((signal * 32767).astype("<i2").tobytes())


Edit = tuple[str, list[str], list[str]]
"""(output suffix, sox output options, sox effects)."""


def middle(duration: float) -> list[str]:
    return ["trim", f"{duration / 2 - 5:.3f}", "10"]


EDITS: dict[str, Callable[[float], Edit]] = {
    "mp3_128k": lambda d: ("mp3", ["-C", "128"], []),
    "mp3_64k": lambda d: ("mp3", ["-C", "64"], []),
    "mp3_32k_mono_22k": lambda d: ("mp3", ["-C", "32", "-r", "22050"], []),
    "ogg_q2": lambda d: ("ogg", ["-C", "2"], []),
    "resample_22k_8bit": lambda d: ("wav", ["-r", "22050", "-b", "8"], []),
    "telephone_8k": lambda d: ("wav", ["-r", "8000"], []),
    "trim_start_2.3s": lambda d: ("wav", [], ["trim", "2.3"]),
    "trim_end_3s": lambda d: ("wav", [], ["trim", "0", f"{d - 3:.3f}"]),
    "trim_both_1.7s": lambda d: ("wav", [], ["trim", "1.7", f"{d - 3.4:.3f}"]),
    "volume_+6dB": lambda d: ("wav", [], ["gain", "6"]),
    "volume_-6dB": lambda d: ("wav", [], ["gain", "-6"]),
    "middle_10s": lambda d: ("wav", [], middle(d)),
    "middle_10s_mp3_64k": lambda d: ("mp3", ["-C", "64"], middle(d)),
}


def apply_edit(source: Path, directory: Path, name: str, edit: Edit) -> bytes:
    suffix, output_options, effects = edit
    target = directory / f"{source.stem}.{name}.{suffix}"
    command = ["sox", str(source), *output_options, str(target), *effects]
    subprocess.run(command, check=True, capture_output=True)
    return target.read_bytes()


def lowest_ber_any_offset(registered: afp.AudioFingerprint, query: afp.AudioFingerprint) -> float:
    result = afp.best_alignment(registered, query, range(-len(query.values), len(registered.values)))
    return 1.0 if result is None else result[0]


def main() -> None:
    started = time.time()
    print(
        f"thresholds: BER <= {afp.MAX_BIT_ERROR_RATE}, overlap >= {afp.MIN_OVERLAP_SECONDS} s; "
        f"{CLIPS} synthesised clips of 20-40 s"
    )
    with tempfile.TemporaryDirectory(prefix="ipx-audio-bench-") as tmp:
        directory = Path(tmp)
        originals: dict[str, Path] = {}
        durations: dict[str, float] = {}
        index = afp.AudioIndex()
        fingerprints: dict[str, afp.AudioFingerprint] = {}
        for seed in range(CLIPS):
            signal = synthesize(seed)
            work_id = f"clip{seed:02d}"
            originals[work_id] = directory / f"{work_id}.wav"
            write_wav(originals[work_id], signal)
            durations[work_id] = len(signal) / RATE
            fingerprints[work_id] = afp.fingerprint_audio(originals[work_id].read_bytes())
            index.add(work_id, fingerprints[work_id])

        false_matches: list[str] = []
        distinct_bers: list[float] = []
        true_bers_all: list[float] = []
        recalls: dict[str, float] = {}
        print(f"\n{'edit':22} {'n':>3} {'recall':>7} {'max BER':>8} {'median BER':>10} {'offset err s':>12}")
        for name, make_edit in {"original": lambda d: ("wav", [], []), **EDITS}.items():
            found, bers, offset_errors = 0, [], []
            for work_id, source in originals.items():
                edited = apply_edit(source, directory, name, make_edit(durations[work_id]))
                query = afp.fingerprint_audio(edited)
                matches = {m.work_id: m for m in index.query(query)}
                if work_id in matches:
                    found += 1
                    bers.append(matches[work_id].distance)
                    expected = {"trim_start_2.3s": 2.3, "trim_both_1.7s": 1.7}.get(name, 0.0)
                    if name.startswith("middle_10s"):
                        expected = durations[work_id] / 2 - 5
                    offset_errors.append(abs(matches[work_id].offset_seconds - expected))
                false_matches += [f"{name} of {work_id} matched {o}" for o in matches if o != work_id]
                if name in ("original", "mp3_64k", "middle_10s"):
                    distinct_bers += [
                        lowest_ber_any_offset(fp, query) for o, fp in fingerprints.items() if o != work_id
                    ]
            recalls[name] = found / len(originals)
            true_bers_all += bers
            print(
                f"{name:22} {len(originals):3} {recalls[name]:7.3f} {max(bers, default=1):8.3f} "
                f"{statistics.median(bers) if bers else 1:10.3f} {max(offset_errors, default=0):12.2f}"
            )
        print(f"{'mean':22} {'':3} {statistics.mean(recalls.values()):7.3f}")
        for name, effects in {
            "silence_8s": ["trim", "0", "8"],
            "tone_440Hz_8s": ["synth", "8", "sine", "440"],
        }.items():
            path = directory / f"{name}.wav"
            subprocess.run(["sox", "-n", "-r", str(RATE), "-c", "1", str(path), *effects], check=True)
            false_matches += [
                f"{name} matched {m.work_id}" for m in index.query(afp.fingerprint_audio(path.read_bytes()))
            ]
        print(
            f"\nfalse matches: {len(false_matches)} (every original and edited query vs the other "
            f"{CLIPS - 1} works, plus 8 s of silence and of a 440 Hz tone vs all works; every "
            f"{SILENT_INTRO_EVERY}th clip starts with 4 s of silence)"
        )
        for line in false_matches:
            print(f"  FALSE MATCH {line}")
        lowest_distinct = min(distinct_bers)
        print(
            f"margin: lowest BER between distinct clips over ALL offsets (>= {afp.MIN_OVERLAP_SECONDS} s of "
            f"changing sound; {len(distinct_bers)} pairs: originals, mp3 64k, 10 s clips) = "
            f"{lowest_distinct:.3f}; "
            f"highest BER of a true match = {max(true_bers_all):.3f}; threshold {afp.MAX_BIT_ERROR_RATE}"
        )
    print(f"elapsed {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
