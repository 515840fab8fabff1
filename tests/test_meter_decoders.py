"""Meter decoders fed bytes directly: framing, resync, checksums, conversions against hand-computed values."""

import json
import math

import pytest

from edgebench.errors import BadInput
from edgebench.host.meters.base import make_meter, protocol_names
from edgebench.host.meters.emulate import (
    ConstantProfile,
    CpuLoadProfile,
    CsvProfile,
    StepsProfile,
    TweetAWattEncoder,
    WattsupEncoder,
)
from edgebench.host.meters.lines import LinesMeter
from edgebench.host.meters.tweetawatt import (
    Calibration,
    TweetAWattMeter,
    build_frame,
    checksum,
    load_calibration,
)
from edgebench.host.meters.um import UMMeter, build_record
from edgebench.host.meters.wattsup import WattsupMeter

S = 1_000_000_000

# --- lines ----------------------------------------------------------------------------------------------------


def test_lines_formats_split_anywhere():
    meter = LinesMeter()
    stream = b"12.3\nW=4.5\r\n7 W\n# comment\n\nwatts: 8.25\nnonsense\n"
    out = []
    for k in range(len(stream)):  # one byte at a time: a line may arrive in pieces
        out += meter.feed(stream[k : k + 1], k)
    assert [r.power_w for r in out] == [12.3, 4.5, 7.0, 8.25]
    assert meter.bad_frames == 1
    assert meter.resolution_w == pytest.approx(0.01)
    assert out[0].t_ns == 4  # stamped when the newline arrived


def test_lines_csv_with_header():
    meter = LinesMeter()
    out = meter.feed(b"time,volts,Watts,pf\n1,230.1,55.5,0.9\n2,229.9,56.0,0.91\n3,229,oops,1\n", 7)
    assert [(r.power_w, r.voltage_v, r.power_factor) for r in out] == [
        (55.5, 230.1, 0.9),
        (56.0, 229.9, 0.91),
    ]
    assert meter.bad_frames == 1
    headerless = LinesMeter()
    assert headerless.feed(b"1,2,3\n", 0) == [] and headerless.bad_frames == 1


def test_lines_drops_endless_garbage():
    meter = LinesMeter()
    meter.feed(b"x" * 5000, 0)
    assert meter.bad_frames == 1
    assert [r.power_w for r in meter.feed(b"\n3.5\n", 1)] == [3.5]


# --- tweetawatt -----------------------------------------------------------------------------------------------


def _square_wave(address=1, vref=498, junk=999):
    # Sample 0 is junk; then the voltage swings 812/212 (avg 512, vpp 600 -> +-170 V) and the current
    # vref +- 31 counts (= +-2 A at 15.5 counts/A), in phase: every sample is 340 W.
    v = [junk] + [812, 212] * 9
    i = [junk] + [vref + 31, vref - 31] * 9
    return build_frame(address, v, i)


def test_tweetawatt_frame_layout_and_checksum():
    frame = _square_wave()
    assert frame[0] == 0x7E and frame[1:3] == bytes([0, 84]) and frame[3] == 0x83
    assert frame[8] == 19 and frame[9:11] == bytes([0x22, 0x00])
    assert len(frame) == 3 + 84 + 1
    assert frame[-1] == checksum(frame[3:-1]) and (sum(frame[3:]) & 0xFF) == 0xFF


def test_tweetawatt_hand_computed_reading():
    meter = TweetAWattMeter()
    (reading,) = meter.feed(_square_wave(), 5 * S)
    assert reading.power_w == pytest.approx(340.0)
    assert reading.current_a == pytest.approx(2.0)
    assert reading.voltage_v == pytest.approx(170.0)
    assert reading.address == "0001" and reading.meter == "tweetawatt"
    assert reading.energy_wh == 0.0  # first packet: nothing elapsed yet
    (second,) = meter.feed(_square_wave(), 5 * S + 9 * S)
    assert second.energy_wh == pytest.approx(340 * 9 / 3600)


def test_tweetawatt_resync_and_bad_frames():
    good = _square_wave()
    bad = bytearray(good)
    bad[30] ^= 0x01  # checksum mismatch
    stream = b"\x00\x01junk" + good + bytes(bad) + good + b"\x7e\xff\xff" + good + good[:40]
    meter = TweetAWattMeter()
    out = meter.feed(stream, 1)
    assert len(out) == 3
    assert meter.bad_frames == 3  # junk, the corrupted frame, the false start: counted, not raised
    assert len(meter.feed(good[40:], 2)) == 1  # the frame split across reads completes


@pytest.mark.parametrize("chunk", [1, 7, 88, 1000])
def test_tweetawatt_false_start_does_not_hold_back_good_frames(chunk):
    # 0x7E followed by a plausible length (0x00 0x90 = 144) inside junk: the decoder must not sit waiting for
    # 144 bytes while complete good frames are already buffered.
    stream = b"\x7e\x00\x90\x83" + _square_wave() + _square_wave()
    meter = TweetAWattMeter()
    got = []
    for k in range(0, len(stream), chunk):
        got += [(k, r.power_w) for r in meter.feed(stream[k : k + chunk], k)]
    assert len(got) == 2 and meter.bad_frames == 1
    first_end = 4 + 88
    assert got[0][0] < first_end  # stamped in the read that completed the first good frame


def test_tweetawatt_several_addresses_and_calibration(tmp_path):
    cal_file = tmp_path / "cal.json"
    cal_file.write_text(json.dumps({"0x0002": {"vref": 500, "current_norm": 31.0}}))
    cal = load_calibration(cal_file)
    assert cal == {2: Calibration(vref=500.0, current_norm=31.0, mains_vpp=340.0)}
    meter = TweetAWattMeter(cal_file)
    out = meter.feed(_square_wave(address=1) + _square_wave(address=2, vref=500), 0)
    assert [r.address for r in out] == ["0001", "0002"]
    assert out[0].power_w == pytest.approx(340.0)
    assert out[1].power_w == pytest.approx(170.0)  # 31 counts per amp: half the current
    # address 3 uses the original table's offset (492)
    (r3,) = meter.feed(_square_wave(address=3, vref=492), 0)
    assert r3.power_w == pytest.approx(340.0)


def test_tweetawatt_glitch_over_13_amps_dropped():
    meter = TweetAWattMeter()
    v = [0] + [812, 212] * 9
    i = [0] + [498 + 220, 498 - 220] * 9  # 14.2 A
    assert meter.feed(build_frame(1, v, i), 0) == []
    assert meter.glitches == 1 and meter.bad_frames == 0


def test_tweetawatt_py2_integer_division():
    v = [0, 811, 500, 212, 640, 300] + [700, 250] * 6 + [333]
    i = [0, 520, 470, 480, 530, 460] + [510, 490] * 6 + [505]
    frame = build_frame(1, v, i)
    vs, is_ = v[1:], i[1:]
    mx, mn = max(vs), min(vs)
    # The original program's arithmetic, written out: floor for avgv and V_i.
    avgv2 = (mx + mn) // 2
    volts2 = [((x - avgv2) * 340) // (mx - mn) for x in vs]
    amps = [(x - 498) / 15.5 for x in is_]
    expect2 = sum(abs(volts2[k] * amps[k]) for k in range(17)) / 17
    avgv = (mx + mn) / 2
    expect = sum(abs((vs[k] - avgv) * 340 / (mx - mn) * amps[k]) for k in range(17)) / 17
    assert expect != pytest.approx(expect2, rel=1e-4)
    (compat,) = TweetAWattMeter(py2_compat=True).feed(frame, 0)
    (exact,) = TweetAWattMeter().feed(frame, 0)
    assert compat.power_w == pytest.approx(expect2)
    assert exact.power_w == pytest.approx(expect)


def test_bad_calibration_file(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BadInput, match="is not JSON .*: fix or regenerate the calibration file"):
        load_calibration(tmp_path / "bad.json")


@pytest.mark.parametrize("watts", [0.0, 0.7, 5.0, 60.0, 250.0, 1400.0])
def test_emulated_tweetawatt_samples_convert_back(watts):
    encoder = TweetAWattEncoder(addresses=(1, 4))
    meter = TweetAWattMeter()
    for t_s in (0.0, 0.013, 1.7, 2.9):  # different phases of the mains cycle
        out = meter.feed(encoder.frame(watts, t_s), 0)
        assert len(out) == 2
        for r in out:
            assert r.power_w == pytest.approx(watts, abs=meter.resolution_w)
    assert meter.bad_frames == 0


# --- registry and profiles ------------------------------------------------------------------------------------


def test_registry():
    assert {"lines", "tweetawatt"} <= set(protocol_names())
    assert make_meter("tweetawatt").nominal_period_s == 2.0
    with pytest.raises(BadInput, match="unknown meter protocol 'morse'"):
        make_meter("morse")


def test_profiles(tmp_path):
    assert ConstantProfile(5).watts_at(100) == 5
    steps = StepsProfile.parse("0:5,10:8")
    assert [steps.watts_at(t) for t in (0, 9.9, 10, 50)] == [5, 5, 8, 8]
    with pytest.raises(BadInput):
        StepsProfile.parse("zero:five")
    (tmp_path / "p.csv").write_text("t_s,power_w\n0,1.5\n2,3\n")
    assert CsvProfile(tmp_path / "p.csv").watts_at(2.5) == 3
    cpu = CpuLoadProfile(2, 12)
    sum(x * x for x in range(200_000))  # some load between the two reads
    assert 2 <= cpu.watts_at(0) <= 12
    assert "emulated" in cpu.identity
    assert not math.isnan(cpu.watts_at(1))


# --- wattsup --------------------------------------------------------------------------------------------------

REAL_RECORD = b"#d,-,18,972,2277,433,5,0,70035,5602,973,2280,435,972,2274,432,95,0,0,500,1020;"


def test_wattsup_real_record():
    meter = WattsupMeter()
    (r,) = meter.feed(b"\x00\x00" + REAL_RECORD + b"\r\n\x00", 3)
    assert (r.power_w, r.voltage_v, r.current_a, r.power_factor) == (97.2, 227.7, 0.433, 0.95)
    assert r.energy_wh == 0.5 and r.meter == "wattsup" and meter.bad_frames == 0


def test_wattsup_version_unselected_fields_and_damage():
    meter = WattsupMeter(interval_s=2)
    assert meter.open_commands() == b"#V,R,0;#L,W,3,E,,2;"
    assert meter.feed(b"#v,-,8,1,0,1,2,1,5,20110101,0;\r\n", 0) == [] and meter.identity == "wattsup PRO"
    unselected = b"#d,-,18,500,_,_,_,_,_,_,_,_,_,_,_,_,_,_,_,_,_;\r\n"
    (r,) = meter.feed(unselected, 1)
    assert r.power_w == 50.0 and r.voltage_v is None and r.meter == "wattsup PRO"
    stream = REAL_RECORD[:30] + b"\r\n" + REAL_RECORD + b"\r\n#d,-,18,_,1,2;\r\n"
    out = []
    for k in range(0, len(stream), 5):
        out += meter.feed(stream[k : k + 5], k)
    assert [x.power_w for x in out] == [97.2]
    assert meter.bad_frames == 2  # the truncated record and the one without power


def test_wattsup_emulator_round_trip():
    encoder = WattsupEncoder(volts=230.0, pf=0.9)
    reply, is_reading = encoder.respond(
        b"#V,R,0;#C,W,18,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0;#L,W,3,E,1,2;", 0, 0
    )
    assert (
        not is_reading and reply.startswith(b"#v,") and encoder.streams and encoder.commanded_interval_s == 2
    )
    (r,) = WattsupMeter().feed(encoder.frame(41.37, 0.0), 0)
    assert r.power_w == 41.4 and r.voltage_v == 230.0 and r.current_a is None  # A not selected


# --- um -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, volts, amps, watts",
    [("UM24C", 5.12, 0.5, 2.56), ("UM25C", 5.123, 0.4567, 2.339), ("UM34C", 20.0, 1.5, 30.0)],
)
def test_um_records(model, volts, amps, watts):
    record = build_record(model, volts, amps, watts, mwh=1234)
    assert len(record) == 130
    meter = UMMeter()
    assert meter.poll() == b"\xf0"
    (r,) = meter.feed(b"\x01\x02" + record[:50], 9) + meter.feed(record[50:], 9)
    assert (r.voltage_v, r.current_a, r.power_w, r.energy_wh) == (volts, amps, watts, 1.234)
    assert r.meter == model and meter.identity == model and meter.bad_frames == 1


def test_um_hand_decoded_bytes():
    # UM25C: 0x09C9, 5.000 V (0x1388 mV), 0.2500 A (2500 = 0x09C4), 1.250 W (0x000004E2 mW)
    record = bytearray(130)
    record[0:10] = bytes.fromhex("09c9138809c4000004e2")
    record[128:130] = b"\xff\xf1"
    (r,) = UMMeter().feed(bytes(record), 0)
    assert (r.voltage_v, r.current_a, r.power_w) == (5.0, 0.25, 1.25)
    record[128] = 0  # no end marker: not a record
    meter = UMMeter()
    assert meter.feed(bytes(record), 0) == [] and meter.bad_frames == 1


# --- impossible readings (issue 9, items 2 and 4) ----------------------------------------------------------------


def _wattsup_record(w, v="1200", a="433", pf="95"):
    cells = [w, v, a, "5", "0", "0", "0", "0", "0", "0", "0", "0", "0", pf, "0", "0", "600", "0"]
    return ("#d,-,18," + ",".join(cells) + ";\r\n").encode()


@pytest.mark.parametrize(
    "record",
    [
        _wattsup_record("nan"),
        _wattsup_record("inf"),
        _wattsup_record("Infinity"),
        _wattsup_record("-972"),
        _wattsup_record("972", v="nan"),
        _wattsup_record("972", pf="nan"),
        _wattsup_record("5000"),  # 500 W from 120 V x 0.433 A = 52 VA
        _wattsup_record("972", a="99999"),  # 100 A: beyond the 15 A rating
        _wattsup_record("972", pf="150"),  # power factor 1.5
    ],
)
def test_wattsup_rejects_impossible_records(record):
    meter = WattsupMeter()
    assert meter.feed(record + _wattsup_record("500"), 0)[0].power_w == 50.0  # only the good one
    assert meter.bad_frames == 1


@pytest.mark.parametrize(
    "text",
    [
        b"-5\n",
        b"W=-0.5\n",
        b"1e999\n",
        b"60000 W\n",  # beyond a three-phase 63 A supply
        b"volts,amps,watts\n120,0.5,600\n",  # 600 W from 60 VA
        b"watts,volts\n-1,120\n",
    ],
)
def test_lines_rejects_impossible_readings(text):
    meter = LinesMeter()
    assert meter.feed(text + b"2.5\n", 0)[0].power_w == 2.5  # only the good one
    assert meter.bad_frames == 1
    assert meter.resolution_w == 0.1  # the rejected value does not refine it


def test_um_bit_flip_in_the_power_word_is_a_bad_frame():
    good = build_record("UM34C", 20.0, 2.1, 42.0)
    flipped = bytearray(good)
    flipped[6] ^= 0x01  # bit 24 of the u32 mW: 42 W reads 16,819 W
    assert int.from_bytes(flipped[6:10], "big") / 1000 == pytest.approx(16819.216)
    meter = UMMeter()
    out = meter.feed(bytes(flipped) + good, 0)
    assert [r.power_w for r in out] == [42.0]
    assert meter.bad_frames == 1


@pytest.mark.parametrize(
    "model, volts, amps, watts, ok",
    [
        ("UM34C", 33.0, 1.0, 33.0, True),  # within the UM34C's 36 V
        ("UM34C", 40.0, 1.0, 40.0, False),  # beyond it
        ("UM25C", 5.0, 6.0, 30.0, False),  # beyond the UM25C's 5 A
        ("UM24C", 5.0, 3.5, 17.5, False),  # beyond the UM24C's 3 A
        ("UM25C", 5.0, 2.0, 12.0, False),  # 12 W from 10 VA
        ("UM25C", 5.0, 2.0, 8.0, False),  # 8 W from 10 VA: a DC meter's power is volts x amps
    ],
)
def test_um_ratings_and_volts_times_amps(model, volts, amps, watts, ok):
    meter = UMMeter()
    out = meter.feed(build_record(model, volts, amps, watts), 0)
    assert (len(out) == 1) == ok and meter.bad_frames == (0 if ok else 1)


def test_tweetawatt_beyond_the_kill_a_watt_rating_is_a_bad_frame():
    v = [0] + [812, 212] * 9
    i = [0] + [498 + 190, 498 - 190] * 9  # 12.3 A (not a 13 A glitch) at 170 V peak: 2084 W > 1875 W
    meter = TweetAWattMeter()
    assert meter.feed(build_frame(1, v, i), 0) == []
    assert meter.bad_frames == 1 and meter.glitches == 0
    assert len(meter.feed(_square_wave(), 0)) == 1


# --- calibration files (issue 9, item 8) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ('{"1": {"current_norm": 0}}', "current_norm"),
        ('{"1": {"current_norm": -15.5}}', "current_norm"),
        ('{"1": {"vref": NaN}}', "vref"),
        ('{"1": {"vref": 1e309}}', "vref"),
        ('{"1": {"vref": -3}}', "vref"),
        ('{"1": {"vref": "492"}}', "vref"),
        ('{"1": {"mains_vpp": Infinity}}', "mains_vpp"),
        ('{"1": {"mains_vpp": 3}}', "mains_vpp"),
        ('{"1": {"vref ": 492}}', "vref "),
    ],
)
def test_calibration_values_are_checked_on_load(tmp_path, text, key):
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        TweetAWattMeter(path)
    message = str(caught.value)
    assert str(path) in message and f"{key!r}"[1:-1] in message
    assert ": set the" in message or "use vref, current_norm, mains_vpp" in message  # the fix


def test_calibration_objects_are_checked_too():
    with pytest.raises(BadInput, match="address 1: current_norm is 0"):
        TweetAWattMeter({1: Calibration(vref=492.0, current_norm=0.0)})


# --- resynchronisation is linear (issue 9, item 13) ---------------------------------------------------------------


def _decode_seconds(protocol, junk):
    import time

    best = math.inf
    for _ in range(2):
        meter = make_meter(protocol)
        start = time.process_time()
        meter.feed(junk, 0)  # in one read: the worst case, a whole buffer of junk to resync through
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["um", "wattsup", "lines", "tweetawatt"])
def test_junk_decoding_time_is_linear(protocol):
    import random

    rng = random.Random(13)
    # Random bytes, plus the bytes each decoder resynchronises on, so every false start is exercised.
    alphabet = bytes(range(256)) + b"\x09\x0d\xc9\x63\x4c#;#\x7e\n" * 8
    big = bytes(rng.choice(alphabet) for _ in range(512 * 1024))
    small = big[: 32 * 1024]
    ratio = _decode_seconds(protocol, big) / max(_decode_seconds(protocol, small), 1e-4)
    # 16 times the bytes: linear takes ~16 times as long, quadratic ~256 times.
    assert ratio < 64, f"{protocol}: 16x the junk took {ratio:.0f}x the time"


def test_um_records_beyond_the_rating_are_each_a_bad_frame():
    """Issue 18: 30 W at 5.1 V is 5.9 A, beyond a UM25C's 5 A: each such record is one bad frame (they were
    counted as one stretch)."""
    from edgebench.host.meters.um import UMMeter, build_record

    meter = UMMeter()
    stream = b"".join(build_record("UM25C", 5.1, 30 / 5.1, 30.0) for _ in range(7))
    assert meter.feed(stream, 0) == [] and meter.bad_frames == 7
    good = build_record("UM25C", 5.1, 2.0, 10.2)
    assert len(meter.feed(good + stream[:130] + good, 0)) == 2 and meter.bad_frames == 8


@pytest.mark.parametrize("watts", [0.5, 20.0, 30.0, 60.0, 119.0])
def test_the_um_emulator_stays_within_what_the_decoder_accepts(watts):
    """Issue 18: the emulator picks the USB PD voltage a charger would for the power, so its current stays within
    the meter's rating and the decoder reads the profile's watts back."""
    from edgebench.host.meters.emulate import UMEncoder
    from edgebench.host.meters.um import UMMeter

    meter = UMMeter()
    (reading,) = meter.feed(UMEncoder().frame(watts, 0.0), 0)
    assert reading.power_w == pytest.approx(watts, abs=0.01) and meter.bad_frames == 0
    assert reading.current_a <= 5.0


def test_the_um_emulator_refuses_a_profile_beyond_the_meter():
    from edgebench.errors import BadInput
    from edgebench.host.meters.emulate import ConstantProfile, start_emulator

    with pytest.raises(BadInput, match="beyond what a UM25C measures"):
        start_emulator("um", ConstantProfile(150.0))
