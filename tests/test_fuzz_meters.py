"""Fuzzing every meter decoder and the CSV log reader with seeded random and mutated input.

Decoders get random bytes and valid frames mutated (bit flips, truncation, duplication, splices), fed in random
chunk sizes: no exception may escape, and every reading they accept must be finite and within the meter's
physical range. The CSV reader gets mutated logs: it returns a trace or raises BadInput naming the file and
the line, never anything else. Fixed seeds: a failure replays exactly.
"""

import math
import random

import pytest

from edgebench.errors import BadInput
from edgebench.host.meters import lines, tweetawatt, um, wattsup
from edgebench.host.meters.base import make_meter
from edgebench.host.meters.emulate import TweetAWattEncoder
from edgebench.host.store import load_trace

ROUNDS = 400


def _valid_stream(protocol: str, rng: random.Random) -> bytes:
    if protocol == "lines":
        return b"".join(
            [b"12.5\n", b"W=3.25\r\n", b"watts,volts,amps\n", b"60.1,120.0,0.6\n", b"7 W\n", b"power: 0.5\n"]
        )
    if protocol == "tweetawatt":
        return b"".join(_TWEETAWATT_FRAMES[rng.randrange(len(_TWEETAWATT_FRAMES))] for _ in range(4))
    if protocol == "wattsup":
        return b"#v,-,8,1,0,1,2,1,5,20110101,0;\r\n" + b"".join(
            wattsup.data_record(rng.uniform(0, 1500), rng.choice([120.0, 230.0]), 0.9) for _ in range(4)
        )
    return b"".join(
        um.build_record(model, volts, amps, round(volts * amps, 3))
        for model, volts, amps in (("UM24C", 5.1, 0.5), ("UM25C", 5.123, 1.2), ("UM34C", 20.0, 2.1))
    )


_TWEETAWATT_FRAMES = [
    TweetAWattEncoder(addresses=(a,)).frame(w, t) for a, w, t in ((1, 40.0, 0.0), (2, 900.0, 0.3))
]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(5)
        if kind == 0 and data:  # bit flips
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(len(data))
                data[k] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # truncation
            del data[rng.randrange(len(data)) :]
        elif kind == 2 and data:  # duplication of a slice
            a = rng.randrange(len(data))
            b = rng.randrange(a, len(data) + 1)
            data[b:b] = data[a:b]
        elif kind == 3 and data:  # splice in random bytes
            k = rng.randrange(len(data) + 1)
            data[k:k] = rng.randbytes(rng.randint(1, 40))
        else:  # splice of another position of itself
            k = rng.randrange(len(data) + 1)
            data[k:k] = data[: rng.randrange(len(data) + 1)] if data else b""
    return bytes(data)


def _check(protocol: str, reading) -> None:
    values = (reading.power_w, reading.voltage_v, reading.current_a, reading.power_factor, reading.energy_wh)
    assert all(v is None or math.isfinite(v) for v in values), reading
    assert reading.power_w >= 0, reading
    if protocol == "lines":
        assert reading.power_w <= lines.MAX_W
    elif protocol == "tweetawatt":
        assert reading.power_w <= tweetawatt.MAX_W and reading.current_a <= tweetawatt.MAX_AMPS
    elif protocol == "wattsup":
        assert reading.power_w <= wattsup.MAX_W
        if reading.voltage_v is not None and reading.current_a is not None:
            assert reading.voltage_v <= wattsup.MAX_V and reading.current_a <= wattsup.MAX_A
            assert reading.power_w <= (reading.voltage_v + 0.1) * (reading.current_a + 0.001) + 0.1
        if reading.power_factor is not None:
            assert 0 <= reading.power_factor <= 1
    else:
        max_v, max_a = um.RATINGS[reading.meter]
        assert reading.voltage_v <= max_v and reading.current_a <= max_a
        assert abs(reading.power_w - reading.voltage_v * reading.current_a) <= (
            reading.voltage_v * 0.001 + reading.current_a * 0.01 + 0.01 + 0.001
        )


@pytest.mark.parametrize("protocol", ["lines", "tweetawatt", "wattsup", "um"])
def test_decoders_survive_fuzzing(protocol):
    rng = random.Random(f"fuzz-{protocol}")
    accepted = 0
    for round_ in range(ROUNDS):
        if round_ % 4 == 0:
            stream = rng.randbytes(rng.randint(0, 3000))
        else:
            stream = b"".join(_mutate(_valid_stream(protocol, rng), rng) for _ in range(rng.randint(1, 3)))
            stream += _valid_stream(protocol, rng)  # a good tail: the decoder must resynchronise onto it
        meter = make_meter(protocol)
        pos = 0
        while pos < len(stream):
            size = rng.choice([1, 2, 7, 64, 130, 1000, 4096])
            for reading in meter.feed(stream[pos : pos + size], pos):
                _check(protocol, reading)
                accepted += 1
            pos += size
        assert meter.bad_frames >= 0
    assert accepted > ROUNDS  # the valid frames do get through


def _csv_log(rng: random.Random) -> str:
    rows = ["t_ns,power_w,voltage_v,current_a,power_factor,energy_wh,meter,address"]
    for k in range(20):
        rows.append(f"{1_700_000_000_000_000_000 + k * 10**9},{rng.uniform(0, 100):.2f},230.0,,,,lines,")
    return "\n".join(rows) + "\n"


def test_csv_logs_load_or_name_the_bad_line(tmp_path):
    rng = random.Random("fuzz-csv")
    tokens = ["nan", "inf", "-1", "1e400", "", "x", "\x00", '"', "99999999999999999999999", ",", "\n", "1.5"]
    outcomes = {"loaded": 0, "refused": 0}
    for round_ in range(ROUNDS):
        text = _csv_log(rng)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:k] + rng.choice(tokens) + text[k + rng.randint(0, 3) :]
            else:
                text = text[:k] + rng.randbytes(rng.randint(1, 8)).decode("latin-1") + text[k:]
        path = tmp_path / f"log{round_}.csv"
        path.write_text(text, encoding="utf-8" if rng.random() < 0.8 else "latin-1")
        try:
            trace = load_trace(path)
        except BadInput as exc:
            message = str(exc)
            assert str(path) in message, message
            # a bad line names its number; a mutated address column may leave a log of several sensors
            assert any(
                words in message
                for words in ("line", "needs t_ns and power_w", "neither SQLite nor CSV", "several sensors")
            ), message
            outcomes["refused"] += 1
            continue
        assert all(math.isfinite(p) and p >= 0 for p in trace.power_w.tolist())
        outcomes["loaded"] += 1
    assert outcomes["loaded"] and outcomes["refused"]
