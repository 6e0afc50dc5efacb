import json
import struct
import zlib

import numpy as np
import pytest

from sparsemac.sw.container import image_from_bytes, image_to_bytes, load_image, save_image
from sparsemac.sw.format import ImageFormatError, pack_model

from factories import random_model


@pytest.fixture
def image_bytes(rng) -> bytes:
    return image_to_bytes(pack_model(random_model(rng, [30, 20, 10], 0.3), lanes=4))


def reseal(body: bytes) -> bytes:
    """A file with a valid checksum around a (deliberately inconsistent) body."""
    return body + struct.pack("<I", zlib.crc32(body))


def split(data: bytes) -> tuple[bytes, dict, bytes]:
    header_length, payload_length = struct.unpack_from("<IQ", data, 12)
    header = json.loads(data[24:24 + header_length])
    return data[:24], header, data[24 + header_length:24 + header_length + payload_length]


def rebuild(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return reseal(struct.pack("<8sHHIQ", b"SPMACIMG", 1, 0, len(text), len(payload)) + text + payload)


def test_file_round_trip(rng, tmp_path):
    image = pack_model(random_model(rng, [30, 20, 10], 0.3), lanes=4)
    save_image(image, tmp_path / "m.smac")
    again = load_image(tmp_path / "m.smac")
    assert image_to_bytes(again) == image_to_bytes(image)
    assert again.input_size == 30 and again.output_size == 10 and again.lanes == 4


@pytest.mark.parametrize("cut", [0, 10, 23, 100, -5, -1])
def test_truncated_file_is_refused(image_bytes, cut):
    with pytest.raises(ImageFormatError, match="too short|truncated"):
        image_from_bytes(image_bytes[:cut])


def test_extended_file_is_refused(image_bytes):
    with pytest.raises(ImageFormatError, match="truncated or extended"):
        image_from_bytes(image_bytes + b"\0")


@pytest.mark.parametrize("position", [30, 200, -10])
def test_flipped_bit_is_caught_by_the_checksum(image_bytes, position):
    data = bytearray(image_bytes)
    data[position] ^= 0x10
    with pytest.raises(ImageFormatError, match="checksum mismatch"):
        image_from_bytes(bytes(data))


def test_wrong_magic_version_and_flags(image_bytes):
    body = image_bytes[:-4]
    with pytest.raises(ImageFormatError, match="not a sparsemac model image"):
        image_from_bytes(reseal(b"NOTANIMG" + body[8:]))
    with pytest.raises(ImageFormatError, match="format version 2"):
        image_from_bytes(reseal(body[:8] + struct.pack("<H", 2) + body[10:]))
    with pytest.raises(ImageFormatError, match="unknown flags"):
        image_from_bytes(reseal(body[:10] + struct.pack("<H", 1) + body[12:]))


def test_malformed_header_with_valid_checksum(image_bytes):
    prefix, header, payload = split(image_bytes)
    text = b"{not json"
    body = struct.pack("<8sHHIQ", b"SPMACIMG", 1, 0, len(text), len(payload)) + text + payload
    with pytest.raises(ImageFormatError, match="not valid JSON"):
        image_from_bytes(reseal(body))
    del header["layers"][0]["rows"]
    with pytest.raises(ImageFormatError, match="malformed header"):
        image_from_bytes(rebuild(header, payload))


def test_array_outside_the_payload(image_bytes):
    _, header, payload = split(image_bytes)
    header["layers"][0]["arrays"]["pointers"]["offset"] = len(payload)
    with pytest.raises(ImageFormatError, match="does not fit the payload"):
        image_from_bytes(rebuild(header, payload))


def test_inconsistent_contents_with_valid_checksum(image_bytes):
    _, header, payload = split(image_bytes)
    header["layers"][0]["lane_entries"][0] += 1
    with pytest.raises(ImageFormatError, match="lane streams|entries"):
        image_from_bytes(rebuild(header, payload))
    _, header, payload = split(image_bytes)
    header["layers"][1]["columns"] += 1
    with pytest.raises(ImageFormatError):
        image_from_bytes(rebuild(header, payload))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such model image"):
        load_image(tmp_path / "absent.smac")
