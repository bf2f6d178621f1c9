"""Issue 17: a few hundred seeded mutations of the golden files (and of two files whose pixels travel
in the embedded stream) through ``codec.decompress_bytes``. Every outcome is a clean ShvcError or the
exact original pixels: never another exception, a hang (pytest-timeout) or a large allocation.
benchmarks/fuzz_decoder.py runs thousands with the same mutations and prints the table."""

import importlib.util
import resource
import struct
import zlib
from pathlib import Path

import pytest

from shvc_gui.core import codec

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

SEED = 17
COUNT = 250                     # spread evenly over the five seed inputs (about 40 s of one core)
QUICK = 40                      # the quick run (`pytest -m "not slow"`) takes the first QUICK of them
MAX_GROWTH_MB = 256             # peak resident memory may not grow more than this in one decode


@pytest.fixture(scope="module")
def seeds(trained_model):
    return fuzz.seed_files(trained_model)


@pytest.fixture(scope="module")
def models(trained_model, trained_det_model):
    """The models of the golden files (versions 1-2: patches, latent; version 3: whole image, det)."""
    return [trained_model, trained_det_model]


def test_seed_inputs_decode_exactly(seeds, models):
    assert "golden-v3" in seeds
    for data, original in seeds.values():
        assert fuzz.outcome(data, original, models) == "exact"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("index", [i if i < QUICK else pytest.param(i, marks=pytest.mark.slow) for i in range(COUNT)])
def test_mutation_is_a_clean_error_or_exact_pixels(index, seeds, models):
    name = sorted(seeds)[index % len(seeds)]
    data, original = seeds[name]
    kind, bad = fuzz.mutate(data, SEED, index)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fuzz.outcome(bad, original, models)                   # raises on any other outcome
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mb < MAX_GROWTH_MB, f"{name} {kind}: peak memory grew by {grew_mb:.0f} MB ({result})"


def test_mutations_are_reproducible_and_varied(seeds):
    data = seeds["golden-v2"][0]
    assert fuzz.mutate(data, SEED, 5) == fuzz.mutate(data, SEED, 5)
    kinds = {fuzz.mutate(data, SEED, i)[0] for i in range(COUNT)}
    assert kinds == set(fuzz.MUTATIONS)
    assert sum(fuzz.mutate(data, SEED, i)[1] != data for i in range(50)) >= 45


def test_a_decoder_that_misbehaves_is_caught(seeds, trained_model, monkeypatch):
    """The harness itself: wrong pixels or a stray exception are reported, not counted as clean."""
    data, original = seeds["palette"]
    real = codec.decompress_bytes

    def wrong_pixels(*a, **k):
        img, h = real(*a, **k)
        img.pixels = img.pixels ^ 1
        return img, h
    monkeypatch.setattr(codec, "decompress_bytes", wrong_pixels)
    with pytest.raises(AssertionError, match="different pixels"):
        fuzz.outcome(data, original, trained_model)
    monkeypatch.setattr(codec, "decompress_bytes", lambda *a, **k: {}["x"])
    with pytest.raises(KeyError):
        fuzz.outcome(data, original, trained_model)


def test_hostile_metadata_that_decodes_must_also_be_writable(seeds, trained_model, monkeypatch):
    """Issue 17.1 was found at the writer: a file that decodes but whose info values break the PNG
    writer counts as a defect here."""
    from shvc_gui.core import container
    data, original = seeds["palette"]
    monkeypatch.setattr(container, "check_info", lambda info, mode: info)       # the reader of before the fix
    header, streams = container.read_container(data)
    hb = container._encode_header(container.Header(**{**header.__dict__, "info": {}, "rebuild_crc": None}))
    blob = b'{"gamma": 1e300}'
    hb = hb[:-2] + b"\x01\x00" + bytes([4]) + len(blob).to_bytes(4, "little") + blob
    hostile = (container.PREAMBLE.pack(container.MAGIC, header.version, 0, len(hb)) + hb
               + struct.pack("<I", zlib.crc32(hb)) + struct.pack("<I", len(streams))
               + b"".join(struct.pack("<QI", len(s), zlib.crc32(s)) for s in streams) + b"".join(streams))
    with pytest.raises(AssertionError, match="cannot be written"):
        fuzz.outcome(hostile, original, trained_model)
