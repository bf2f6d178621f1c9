"""image_io: every mode round-trips (Pillow, split/join, files), metadata byte for byte, bad files."""

import io
import os
import stat

import imagecodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from shvc_gui.core import container, image_io
from shvc_gui.core.errors import FormatError, ImageError, ShvcError
from shvc_gui.core.image_io import LoadedImage

SIZES = [(1, 1), (1, 300), (63, 65), (200, 137), (257, 513)]
ALL_MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV",
             "I;16", "I;16B", "I", "F", "LA;16", "RGB;16", "RGBA;16"]


def photo(h, w, c=3, seed=0):
    """A smooth, noisy picture (compresses like a photograph, unlike pure noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / 9 + k) * np.cos(y / 13 - k) for k in range(c)], axis=-1)
    return np.clip(127 + 100 * base + rng.normal(0, 6, (h, w, c)), 0, 255).astype(np.uint8)


def make(mode, h=23, w=31, seed=0):
    """A LoadedImage of ``mode`` with content that uses the whole sample range."""
    rng = np.random.default_rng(seed)
    rgba = photo(h, w, 4, seed)
    if mode == "1":
        return LoadedImage(rgba[:, :, :1] > 127, "1")
    if mode in ("I;16", "I;16B", "LA;16", "RGB;16", "RGBA;16"):
        c = container.MODE_CHANNELS[mode]
        return LoadedImage(rgba[:, :, :c].astype(np.uint16) * 257 + rng.integers(0, 2, (h, w, c), dtype=np.uint16),
                           mode)
    if mode == "I":
        return LoadedImage(rng.integers(-2**31, 2**31, (h, w, 1), dtype=np.int64).astype(np.int32), "I")
    if mode == "F":
        return LoadedImage(rng.standard_normal((h, w, 1)).astype(np.float32), "F")
    if mode in ("P", "PA"):
        pal = rng.integers(0, 256, 3 * 200, dtype=np.uint8).tobytes()
        idx = (rgba[:, :, :1] % 200).astype(np.uint8)
        px = idx if mode == "P" else np.concatenate([idx, rgba[:, :, 3:]], axis=2)
        return LoadedImage(px, mode, palette=pal)
    return LoadedImage(rgba[:, :, :container.MODE_CHANNELS[mode]], mode)


# --- LoadedImage and Pillow -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [m for m in ALL_MODES if m not in image_io.NON_PIL_MODES])
def test_pillow_round_trip_every_mode(mode):
    img = make(mode)
    pil = img.to_pil()
    assert pil.mode == mode and pil.size == (31, 23)
    back = LoadedImage(pil)
    assert back.same_pixels(img) and image_io.pixel_checksum(back) == image_io.pixel_checksum(img)
    assert back.pixels.dtype == image_io.sample_dtype(mode) and back.pixels.ndim == 3


def test_mode_inference_aliases_and_validation():
    assert LoadedImage(np.zeros((2, 3), np.uint8)).mode == "L"
    assert LoadedImage(np.zeros((2, 3, 3), np.uint16)).mode == "RGB;16"
    assert LoadedImage(np.zeros((2, 3, 3), np.uint16), "RGB16").mode == "RGB;16"
    assert LoadedImage(np.zeros((2, 3), bool)).mode == "1"
    be = np.arange(6, dtype=">u2").reshape(2, 3)
    img = LoadedImage(be, "I;16B")
    assert img.pixels.dtype.isnative and img.pixels[0, 1, 0] == 1
    with pytest.raises(ValueError):
        LoadedImage(np.zeros((2, 3, 3), np.uint8), "L")
    with pytest.raises(ValueError):
        LoadedImage(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(ImageError, match="16-bit colour"):
        LoadedImage(np.zeros((2, 3, 3), np.uint16)).to_pil()


def test_keywords_carry_metadata():
    pil = Image.fromarray(photo(5, 6))
    img = LoadedImage(pil, icc=b"icc", exif=b"exif", text={"a": "b"}, source_format="PNG")
    assert (img.icc, img.exif, img.text, img.source_format, img.mode) == (b"icc", b"exif", {"a": "b"}, "PNG", "RGB")
    again = LoadedImage(img)
    assert again.same_pixels(img) and img.size == (6, 5) and np.array_equal(np.asarray(img.pil), np.asarray(pil))


def test_pixel_checksum_sees_every_change():
    img = make("P")
    base = image_io.pixel_checksum(img)
    assert base == image_io.pixel_checksum(make("P"))
    px = img.pixels.copy()
    px[-1, -1, 0] ^= 1
    assert image_io.pixel_checksum(LoadedImage(px, "P", palette=img.palette)) != base
    pal = bytearray(img.palette)
    pal[-1] ^= 1
    assert image_io.pixel_checksum(LoadedImage(img.pixels, "P", palette=bytes(pal))) != base
    assert image_io.pixel_checksum(LoadedImage(img.pixels, "L")) != image_io.pixel_checksum(
        LoadedImage(img.pixels.reshape(img.width, img.height, 1), "L"))
    rgb = Image.fromarray(photo(4, 5))      # unchanged definition for RGB (the golden file holds it)
    import zlib
    assert image_io.pixel_checksum(LoadedImage(rgb)) == zlib.crc32(rgb.tobytes(), zlib.crc32(b"RGB:5x4:"))


# --- split for coding / join after decoding -----------------------------------------------------------
@pytest.mark.parametrize("mode", ALL_MODES)
def test_split_join_every_mode(mode):
    img = make(mode)
    rgb, fallback, method = image_io.split_for_coding(img)
    assert method == image_io.coding_method(mode)
    if mode == "RGB":
        assert fallback is None and rgb.shape == (23, 31, 3)
    elif mode == "RGBA":
        assert method == image_io.METHOD_MIXED and rgb.dtype == np.uint8 and rgb.shape[2] == 3
    else:
        assert rgb is None and method == image_io.METHOD_FALLBACK
    back = image_io.join_after_decoding(rgb, fallback, method)
    assert back.same_pixels(img) and image_io.pixel_checksum(back) == image_io.pixel_checksum(img)


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "RGB;16"])
def test_split_join_odd_sizes(mode, h, w):
    img = make(mode, h, w, seed=h + w)
    back = image_io.join_after_decoding(*image_io.split_for_coding(img))
    assert back.same_pixels(img)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), kind=st.sampled_from(["u8", "u16", "bool", "pal"]),
       c=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_split_join_property(h, w, kind, c, seed):
    rng = np.random.default_rng(seed)
    if kind == "u8":
        img = LoadedImage(rng.integers(0, 256, (h, w, c), dtype=np.uint8))
    elif kind == "u16":
        img = LoadedImage(rng.integers(0, 65536, (h, w, c), dtype=np.uint16))
    elif kind == "bool":
        img = LoadedImage(rng.integers(0, 2, (h, w, 1)).astype(bool))
    else:
        pmode = "RGBA" if c % 2 else "RGB"
        img = LoadedImage(rng.integers(0, 16, (h, w, 1), dtype=np.uint8), "P", palette_mode=pmode,
                          palette=rng.integers(0, 256, 16 * len(pmode), dtype=np.uint8).tobytes())
    rgb, fallback, method = image_io.split_for_coding(img)
    back = image_io.join_after_decoding(rgb, fallback, method)
    assert back.same_pixels(img) and image_io.pixel_checksum(back) == image_io.pixel_checksum(img)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "LA;16", "RGB;16", "RGBA;16"])
def test_both_fallback_codecs_accept_every_8_and_16_bit_layout(mode):
    img = make(mode, 9, 7)
    codecs = dict(image_io._candidates(img.pixels))
    assert set(codecs) == {image_io.FB_PNG, image_io.FB_JPEGXL}
    for codec, encode in codecs.items():
        back = image_io._decode_body(codec, encode(), img.pixels.shape, img.pixels.dtype)
        assert np.array_equal(back, img.pixels), (mode, codec)


def test_fallback_picks_a_real_codec_and_zlib_for_others():
    assert image_io.fallback_codec(image_io.split_for_coding(make("L", 64, 64))[1]) in ("PNG", "JPEG-XL")
    assert image_io.fallback_codec(image_io.split_for_coding(make("F"))[1]) == "zlib"


def test_join_checks_header_and_adds_metadata():
    img = make("LA")
    rgb, fb, method = image_io.split_for_coding(img)
    h = container.Header(31, 23, "LA", method, icc=b"icc", exif=b"exif", text={"k": "v"}, info={"dpi": (72.0, 72.0)},
                         source_format="PNG")
    back = image_io.join_after_decoding(rgb, fb, method, header=h)
    assert back.icc == b"icc" and back.exif == b"exif" and back.text == {"k": "v"} and back.info["dpi"] == (72.0, 72.0)
    h.mode = "L"                                    # caught before decoding, from the stream's own header
    with pytest.raises(FormatError, match="describes a 31x23 LA image, not the 31x23 L"):
        image_io.join_after_decoding(rgb, fb, method, header=h)
    with pytest.raises(FormatError, match="missing"):
        image_io.join_after_decoding(None, None, image_io.METHOD_FALLBACK)


@pytest.mark.parametrize("damage", [
    lambda d: b"XXXX" + d[4:],
    lambda d: d[:10],
    lambda d: d[:-3],
    lambda d: d[:4] + b"\x07" + d[5:],                      # unknown codec
    lambda d: d[:10] + bytes([d[10] ^ 0x40]) + d[11:],      # height: impossible size
    lambda d: d[:7] + bytes([d[7] ^ 0x01]) + d[8:],         # height: does not match the body
    lambda d: d[:-20] + bytes(20),                          # damaged body
])
def test_damaged_fallback_stream_is_a_format_error(damage):
    stream = image_io.split_for_coding(make("P", 40, 40))[1]
    with pytest.raises(FormatError, match="corrupt"):
        image_io.decode_fallback(damage(stream))


def test_damaged_zlib_and_bilevel_streams():
    stream = image_io.split_for_coding(make("F"))[1]
    assert image_io.fallback_codec(stream) == "zlib"
    for bad in (stream[:-1], stream + b"\0", stream[:-8] + bytes(8)):
        with pytest.raises(FormatError, match="corrupt"):
            image_io.decode_fallback(bad)
    import zlib
    head = image_io.FALLBACK_MAGIC + bytes([image_io.FB_RAW_ZLIB, 1]) + b"1" + (2).to_bytes(4, "little") * 2 + bytes(3)
    assert image_io.decode_fallback(head + zlib.compress(bytes([0, 1, 1, 0]))).pixels.sum() == 2
    with pytest.raises(FormatError, match="other than 0 and 1"):
        image_io.decode_fallback(head + zlib.compress(bytes([0, 1, 2, 0])))


def test_to_display_is_8bit_rgb_or_rgba():
    for mode in ALL_MODES:
        d = image_io.to_display(make(mode))
        assert d.dtype == np.uint8 and d.shape[:2] == (23, 31) and d.shape[2] in (3, 4), mode


# --- files ----------------------------------------------------------------------------------------
def _expected_mode_after_write(mode):
    return "I;16" if mode in ("I;16B",) else mode


WRITABLE = sorted((fmt, mode) for fmt, modes in image_io.WRITE_MODES.items() for mode in modes
                  if mode in ALL_MODES)


@pytest.mark.parametrize("fmt,mode", WRITABLE)
def test_every_writable_mode_round_trips_through_its_file(tmp_path, fmt, mode):
    img = make(mode)
    path = tmp_path / f"x.{fmt}"
    image_io.save_image(img, path)
    back = image_io.load_image(path)
    assert back.mode == _expected_mode_after_write(mode)
    assert np.array_equal(back.pixels, img.pixels)
    if mode == "P":
        assert back.palette[:len(img.palette)] == img.palette


@pytest.mark.parametrize("fmt,mode", [("webp", "L"), ("bmp", "RGBA"), ("png", "CMYK"), ("png", "F"), ("tiff", "RGB;16"),
                                      ("png", "HSV")])
def test_modes_a_format_cannot_hold_are_refused(tmp_path, fmt, mode):
    with pytest.raises(ShvcError, match="cannot hold"):
        image_io.save_image(make(mode), tmp_path / f"x.{fmt}")
    assert not list(tmp_path.iterdir())


def test_unknown_or_lossy_output_format(tmp_path):
    with pytest.raises(ShvcError, match="Cannot write JPG"):
        image_io.save_image(make("RGB"), tmp_path / "x.jpg")
    assert image_io.format_for_path(tmp_path / "noext") == "png"
    assert image_io.preferred_format("CMYK") == "tiff" and image_io.preferred_format("HSV") is None


@pytest.mark.parametrize("h,w", SIZES)
def test_odd_sizes_through_png(tmp_path, h, w):
    img = make("RGBA", h, w, seed=w)
    image_io.save_image(img, tmp_path / "o.png")
    assert image_io.load_image(tmp_path / "o.png").same_pixels(img)


ICC = bytes(range(256)) * 3 + b"\x00\x01icc-end"


def _exif_bytes():
    exif = Image.Exif()
    exif[0x010F] = "shvc camera"
    exif[0x0110] = "model \u00e9"
    return exif.tobytes()


@pytest.mark.parametrize("src_fmt", ["png", "jpeg", "webp"])
def test_icc_exif_text_kept_byte_for_byte(tmp_path, src_fmt):
    src = tmp_path / f"src.{src_fmt}"
    kw = dict(icc_profile=ICC, exif=_exif_bytes())
    if src_fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "kept")
        info.add_itxt("Title", "unicode \u2713")
        kw.update(pnginfo=info, dpi=(300, 300))
    elif src_fmt == "webp":
        kw.update(lossless=True)
    Image.fromarray(photo(30, 40)).save(src, **kw)
    a = image_io.load_image(src)
    assert a.icc == ICC and a.exif and a.exif.endswith(_exif_bytes()[-20:])
    assert a.source_format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[src_fmt]
    for out_fmt in ("png", "webp", "tiff"):
        out = tmp_path / f"out.{out_fmt}"
        notes = image_io.save_image(a, out)
        b = image_io.load_image(out)
        assert b.icc == ICC and b.same_pixels(a), out_fmt
        if out_fmt != "tiff":
            assert b.exif == a.exif, out_fmt
        if src_fmt == "png":
            assert ("text" in " ".join(notes)) == (out_fmt != "png")
        if out_fmt == "png" and src_fmt == "png":
            assert b.text == {"Comment": "kept", "Title": "unicode \u2713"}
            assert b.info["dpi"] == pytest.approx((300, 300), rel=1e-3)


def test_bmp_notes_what_it_drops(tmp_path):
    img = make("RGB")
    img.icc, img.exif, img.text = ICC, _exif_bytes(), {"a": "b"}
    notes = image_io.save_image(img, tmp_path / "x.bmp")
    assert len(notes) == 3 and all(n.endswith(".") for n in notes)


def test_png_info_values_kept(tmp_path):
    # gamma, transparency (colour key, palette alpha) survive a load/save cycle
    src = tmp_path / "g.png"
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    Image.fromarray(photo(8, 9)).save(src, pnginfo=info, transparency=(1, 2, 3))
    a = image_io.load_image(src)
    assert a.info["gamma"] == pytest.approx(0.45455) and a.info["transparency"] == (1, 2, 3)
    image_io.save_image(a, tmp_path / "g2.png")
    b = image_io.load_image(tmp_path / "g2.png")
    assert b.info == a.info
    p = Image.fromarray(photo(8, 9)).quantize(16)
    p.save(tmp_path / "p.png", transparency=bytes(range(0, 160, 10)))
    pa = image_io.load_image(tmp_path / "p.png")
    image_io.save_image(pa, tmp_path / "p2.png")
    pb = image_io.load_image(tmp_path / "p2.png")
    assert pb.same_pixels(pa) and pb.info["transparency"] == pa.info["transparency"]


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_png_is_read_exactly_and_written_with_metadata(tmp_path, channels):
    arr = np.random.default_rng(channels).integers(0, 65536, (9, 11, channels)).astype(np.uint16)
    (tmp_path / "d.png").write_bytes(imagecodecs.png_encode(arr))
    img = image_io.load_image(tmp_path / "d.png")
    assert img.mode == {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels] and np.array_equal(img.pixels, arr)
    img.icc, img.exif, img.text, img.info = ICC, _exif_bytes(), {"k": "v"}, {"dpi": (96.0, 96.0)}
    image_io.save_image(img, tmp_path / "out.png")
    back = image_io.load_image(tmp_path / "out.png")
    assert np.array_equal(back.pixels, arr) and back.mode == img.mode
    assert back.icc == ICC and back.exif.endswith(_exif_bytes()[6:]) and back.text == {"k": "v"}
    assert back.info["dpi"] == pytest.approx((96, 96), rel=1e-3)


def test_16bit_rgb_png_with_colour_key(tmp_path):
    arr = np.random.default_rng(0).integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    image_io.save_image(LoadedImage(arr, info={"transparency": (1, 2, 3)}), tmp_path / "k.png")
    back = image_io.load_image(tmp_path / "k.png")
    assert back.mode == "RGB;16" and np.array_equal(back.pixels, arr) and back.info["transparency"] == (1, 2, 3)


def test_16bit_tiff_and_grey_are_read_exactly(tmp_path):
    arr = np.random.default_rng(1).integers(0, 65536, (7, 5, 3)).astype(np.uint16)
    (tmp_path / "d.tif").write_bytes(imagecodecs.tiff_encode(arr))
    img = image_io.load_image(tmp_path / "d.tif")
    assert img.mode == "RGB;16" and np.array_equal(img.pixels, arr)
    grey = arr[:, :, 0].copy()
    (tmp_path / "g.png").write_bytes(imagecodecs.png_encode(grey.reshape(7, 5, 1)))
    g = image_io.load_image(tmp_path / "g.png")
    assert g.mode == "I;16" and np.array_equal(g.pixels[:, :, 0], grey)


def test_jpegxl_is_read_through_imagecodecs(tmp_path):
    for arr in (photo(12, 17), photo(12, 17, 1)[:, :, 0], photo(5, 6, 4).astype(np.uint16) * 250):
        (tmp_path / "x.jxl").write_bytes(imagecodecs.jpegxl_encode(arr, lossless=True))
        img = image_io.load_image(tmp_path / "x.jxl")
        assert img.source_format == "JPEG-XL" and np.array_equal(img.pixels.reshape(arr.shape), arr)


def test_gif_with_transparency(tmp_path):
    Image.fromarray(photo(10, 12, seed=1)).quantize(32).save(tmp_path / "a.gif", transparency=5)
    img = image_io.load_image(tmp_path / "a.gif")
    ref = Image.open(tmp_path / "a.gif")
    assert img.mode == ref.mode and np.array_equal(img.pixels[:, :, 0], np.asarray(ref))
    assert img.info.get("transparency") == 5 and img.source_format == "GIF"


@pytest.mark.parametrize("fmt,suffix", [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_animations_and_multi_page_files_are_refused(tmp_path, fmt, suffix):
    """Issue 17.7: keeping only the first frame would drop data silently."""
    frames = [Image.fromarray(photo(10, 12, seed=s)) for s in range(3)]
    if fmt == "GIF":
        frames = [f.quantize(32) for f in frames]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(tmp_path / f"a.{suffix}", format=fmt, save_all=True, append_images=frames[1:], **kw)
    with pytest.raises(ImageError, match="3 frames") as info:
        image_io.load_image(tmp_path / f"a.{suffix}")
    assert str(info.value).count(".") <= 3 and "\n" not in str(info.value)


# --- bad input ------------------------------------------------------------------------------------
def test_decompression_bomb_is_an_image_error(tmp_path, monkeypatch):
    Image.fromarray(photo(40, 50)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bombs"):
        image_io.load_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)          # past Pillow's own error limit too
    with pytest.raises(ImageError, match="decompression bombs"):
        image_io.load_image(tmp_path / "big.png")


def _png_bytes():
    buf = io.BytesIO()
    Image.fromarray(photo(40, 50)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg_bytes():
    buf = io.BytesIO()
    Image.fromarray(photo(40, 50)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,message", [
    ("empty.png", b"", "is empty"),
    ("text.png", b"hello, this is not an image\n" * 3, "not an image shvc can read"),
    ("doc.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "not an image shvc can read"),
    ("cut.png", _png_bytes()[:200], "damaged or truncated"),
    ("cut.jpg", _jpeg_bytes()[:300], "damaged or truncated"),
    ("bad.jxl", b"\xff\x0a" + b"\x00" * 30, "not a readable JPEG-XL"),
    ("header.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "."),
])
def test_bad_files_give_one_sentence(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ImageError, match=message) as info:
        image_io.load_image(tmp_path / name)
    text = str(info.value)
    assert text.startswith(name) and text.endswith(".") and "\n" not in text


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="cannot be read"):
        image_io.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="cannot be read"):
        image_io.load_image(tmp_path)


# --- atomic writes ---------------------------------------------------------------------------------
def test_never_overwrites_without_force(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(ShvcError, match="already exists"):
        image_io.save_image(make("RGB"), path)
    assert path.read_bytes() == b"precious"
    image_io.save_image(make("RGB"), path, force=True)
    assert image_io.load_image(path).same_pixels(make("RGB"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_write_modes_and_errors(tmp_path):
    image_io.atomic_write(tmp_path / "a.bin", b"x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    with pytest.raises(ShvcError, match="already exists"):
        image_io.atomic_write(tmp_path / "a.bin", b"y")
    with pytest.raises(ShvcError, match="Cannot write"):
        image_io.atomic_write(tmp_path / "missing" / "a.bin", b"y")
    assert (tmp_path / "a.bin").read_bytes() == b"x" and len(list(tmp_path.iterdir())) == 1
