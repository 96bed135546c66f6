"""core.machine_speed + core.time_estimate: a real (small) measurement of this machine, cached,
and the estimate built from it: what training does, with caches taken into account."""
from __future__ import annotations

import json

import pytest

from core import machine_speed
from core.config import TrainConfig
from core.data.scan import scan
from core.time_estimate import estimate, needs_measuring, split_counts

SIZE, BATCH = 64, 4  # small, so the real measurement takes seconds


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    ws = tmp_path_factory.mktemp("speed-ws")
    speeds = {mode: machine_speed.measure("tf_efficientnet_lite0", SIZE, BATCH, mode, workspace=ws)
              for mode in ("forward", "train")}
    return ws, speeds


def test_measurement_is_cached_per_mode_and_read_back(measured):
    ws, speeds = measured
    forward, train = speeds["forward"], speeds["train"]
    assert forward.images_per_s > 0 and train.images_per_s > 0
    # forward + backward + step costs more per photo than the forward pass alone
    assert train.images_per_s < forward.images_per_s
    assert machine_speed.cached("tf_efficientnet_lite0", SIZE, BATCH, "forward", workspace=ws) == forward
    assert machine_speed.cached("tf_efficientnet_lite0", SIZE, BATCH * 2, "forward", workspace=ws) is None
    stored = json.loads((ws / "cache" / machine_speed.CACHE_FILE).read_text())
    assert len(stored) == 2 and all(e["load"] >= 0 for e in stored.values())


def test_estimate_uses_the_measured_speed_and_the_caches(measured, make_dataset):
    ws, speeds = measured
    df = scan(make_dataset(("a", "b"), n=10, size=(96, 80)), workspace=ws)
    base = TrainConfig(data_path=str(df.attrs.get("root", ".")), image_size=SIZE, batch_size=BATCH)
    fe = base.replace(strategy="feature-extraction", epochs=5)
    full = base.replace(strategy="full", epochs=3)
    assert not needs_measuring(fe, ws) and not needs_measuring(full, ws)
    unmeasured = base.replace(strategy="full", batch_size=BATCH * 2)
    assert needs_measuring(unmeasured, ws)
    assert estimate(unmeasured, df, ws).measured is False  # the rough figure, and it says so

    e_fe, e_full = estimate(fe, df, ws), estimate(full, df, ws)
    assert e_fe.measured and e_full.measured
    counts = split_counts(df, base.val_fraction, base.test_fraction)
    assert sum(counts.values()) == 20
    # full fine-tuning: each training photo goes forward and backward in every epoch
    assert e_full.parts["epochs"] >= full.epochs * counts["train"] / speeds["train"].images_per_s
    # (no full > feature-extraction check here: on 20 photos of 64 px the head epochs' fixed cost,
    # scaled by a measured slowness, can outweigh 3 full epochs; it failed so in CI at 2.9 s vs 9.9 s)
    assert e_full.memory_mb == round(speeds["train"].peak_mem_mb)

    # features already cached for every photo: feature extraction has no forward pass left
    store = ws / "cache" / "features"
    store.mkdir(parents=True, exist_ok=True)
    for sha1 in df["sha1"]:
        (store / f"{fe.backbone}-{SIZE}-{sha1}.npy").write_bytes(b"")
    assert estimate(fe, df, ws).parts["features"] == 0.0


def test_a_real_fine_tune_records_its_speed_and_the_next_estimate_is_built_from_it(make_dataset, tmp_path):
    """The one source of speed (issue 12 item 3, issue 11 item 1): a full fine-tune writes the
    speed its epochs really ran at into the machine-speed cache, and the next estimate on this
    machine prices its epochs from that figure, not from the short measurement."""
    from core.train import train

    ws = tmp_path / "ws"
    root = make_dataset(("a", "b"), n=10, size=(96, 80))
    df = scan(root, workspace=ws)
    config = TrainConfig(data_path=str(root), strategy="full", epochs=3, image_size=SIZE, batch_size=BATCH,
                         early_stopping_patience=0, run_name="speed")
    assert machine_speed.cached(config.backbone, SIZE, BATCH, machine_speed.LOOP_MODE, workspace=ws) is None
    train(config, workspace=ws)
    loop = machine_speed.cached(config.backbone, SIZE, BATCH, machine_speed.LOOP_MODE, workspace=ws)
    assert loop is not None and loop.images_per_s > 0 and loop.mode == machine_speed.LOOP_MODE
    # only the loop has been measured: no short "train" measurement is needed for an estimate
    assert machine_speed.cached(config.backbone, SIZE, BATCH, "train", workspace=ws) is None
    machine_speed.measure(config.backbone, SIZE, BATCH, "forward", workspace=ws)
    guess = estimate(config, df, ws)
    assert guess.measured and guess.images_per_s["loop"] == loop.images_per_s
    counts = split_counts(df, config.val_fraction, config.test_fraction)
    # the epochs' photos are priced at the loop's own speed (more photos per second: less time)
    faster = machine_speed.record_loop(config.backbone, SIZE, BATCH, loop.device, loop.images_per_s * 4,
                                       loop.peak_mem_mb, ws)
    quicker = estimate(config, df, ws)
    assert quicker.images_per_s["loop"] == faster.images_per_s
    assert quicker.parts["epochs"] < guess.parts["epochs"]
    assert guess.parts["epochs"] >= config.epochs * counts["train"] / loop.images_per_s * 0.5


def test_one_stalled_weight_write_does_not_set_the_save_time(monkeypatch):
    """save_s is the median of SAVE_REPEATS writes: CI once saw a single write stall for 1.1 s,
    which made 15 head epochs look slower than 4 fine-tuned ones."""
    import torch

    from core import callbacks, machine_speed

    clock = [0.0]
    durations = iter([1.1, 0.02, 0.03])  # the first write waits behind the disk's other work

    def write(model, path):
        clock[0] += next(durations)

    monkeypatch.setattr(callbacks, "save_weights", write)
    monkeypatch.setattr(machine_speed.time, "perf_counter", lambda: clock[0])
    assert machine_speed._save_seconds(torch.nn.Linear(2, 2)) == pytest.approx(0.03)
