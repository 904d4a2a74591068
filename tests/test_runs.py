"""The run manager (net2net.training.runs): one cache root, train-or-reuse keyed by content, listing, run names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline import _tiny_ae

from net2net.cli import main
from net2net.training import runs
from net2net.training.runs import RunInfo, list_runs, resolve_run, run_key, train_or_reuse

ROOT = Path(__file__).resolve().parents[1]


def _config(ae: Path, latents: Path, steps: int = 4) -> dict:
    """A tiny real translation: class label -> the code of a tiny autoencoder (a weights file the config names)."""
    digits = {"target": "net2net.data.Digits", "params": {"split": "test", "size": 28}}
    return {
        "model": {"target": "net2net.training.translator.CINNModule", "params": {
            "batch_size": 16, "optim": {"max_lr": 1e-3, "warmup_steps": 1},
            "flow_config": {"target": "net2net.flows.ConditionalINN",
                            "params": {"dim": 8, "cond_dim": 10, "n_blocks": 1, "hidden_dim": 8, "embedding_dim": 4}}}},
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "batch_size": 16, "source_key": "label", "cache_dir": str(latents), "progress": False,
            "source": {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 10}},
            "target": {"target": "net2net.experts.target.load_autoencoder_target", "params": {"path": str(ae)}},
            "train": digits, "validation": digits}},
        "lightning": {"trainer": {"max_steps": steps, "val_check_interval": steps, "check_val_every_n_epoch": None,
                                  "limit_val_batches": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False},
                      "callbacks": {"image_logger": None}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Runs trained in one root: the first, a reuse, a changed config, a changed weights file."""
    base = tmp_path_factory.mktemp("runs")
    ae = base / "ae.safetensors"
    _tiny_ae().save_safetensors(ae)
    cfg = _config(ae, base / "latents")
    root = base / "cache" / "runs"
    first = train_or_reuse(cfg, "labels", root=root)
    stamp = (first.path / "cinn.safetensors").stat().st_mtime_ns
    again = train_or_reuse(cfg, "labels", root=root)
    changed = train_or_reuse(_config(ae, base / "latents", steps=5), "labels", root=root)
    time.sleep(0.01)
    _tiny_ae(seed=1).save_safetensors(ae)  # the same path, other weights
    new_weights = train_or_reuse(cfg, "labels", root=root)
    return {"base": base, "root": root, "cfg": cfg, "first": first, "stamp": stamp, "again": again,
            "changed": changed, "new_weights": new_weights}  # fmt: skip


def test_train_or_reuse_keys_by_config_and_weights(trained: dict) -> None:
    first, again, changed, new_weights = (trained[k] for k in ("first", "again", "changed", "new_weights"))
    assert first.trained_now and first.train_seconds > 0
    assert first.path.parent == trained["root"] and first.path.name == f"labels-{first.key}"
    assert (first.path / "cinn.safetensors").is_file() and (first.path / "config.yaml").is_file()
    manifest = json.loads((first.path / "run.json").read_text())
    assert manifest["name"] == "labels" and manifest["key"] == first.key and manifest["weights"] == "cinn.safetensors"
    assert list(manifest["files"]) == [str(trained["base"] / "ae.safetensors")]  # the weights file and its digest
    # the same config: reused, nothing trained or rewritten
    assert not again.trained_now and again.train_seconds == 0 and again.path == first.path
    assert (first.path / "cinn.safetensors").stat().st_mtime_ns == trained["stamp"]
    # a changed config, and changed weights behind the same path: new runs
    assert changed.trained_now and changed.key != first.key
    assert new_weights.trained_now and new_weights.key not in (first.key, changed.key)
    assert json.loads((new_weights.path / "run.json").read_text())["files"] != manifest["files"]


def test_retrain_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, bool]] = []

    def fake_train(cfg: object, overrides: object = (), log_dir: Path | None = None, resume: bool = True) -> Path:
        assert log_dir is not None
        calls.append((Path(log_dir), resume))
        (Path(log_dir) / "cinn.safetensors").write_bytes(b"weights")
        return Path(log_dir)

    monkeypatch.setattr("net2net.training.run.train_from_config", fake_train)
    cfg = {"model": {"target": "x"}, "data": {"target": "y"}}
    unfinished = tmp_path / f"job-{run_key(cfg)}"
    (unfinished / "checkpoints").mkdir(parents=True)  # an interrupted run: no weights yet
    run = train_or_reuse(cfg, "job", root=tmp_path)
    assert run.path == unfinished and calls == [(unfinished, True)]  # resumed (train_from_config finds last.ckpt)
    assert not train_or_reuse(cfg, "job", root=tmp_path).trained_now
    assert train_or_reuse(cfg, "job", root=tmp_path, retrain=True).trained_now and calls[-1] == (unfinished, False)
    with pytest.raises(ValueError, match="run name"):
        train_or_reuse(cfg, "../escape", root=tmp_path)


def test_run_key_is_canonical_and_follows_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    a = {"model": {"target": "m", "params": {"a": 1, "b": [1, 2]}}, "seed": 0}
    b = {"seed": 0, "model": {"params": {"b": (1, 2), "a": 1}, "target": "m"}}
    assert run_key(a) == run_key(b) and len(run_key(a)) == 12
    assert run_key(a) != run_key({**a, "seed": 1})
    assert run_key({"x": "${seed}", "seed": 2}) == run_key({"x": 2, "seed": 2})  # interpolations resolved
    shipped = {"path": "pretrained:fashion_mnist_autoencoder"}
    assert list(runs.file_digests(runs._file_refs(shipped))) == ["pretrained:fashion_mnist_autoencoder"]
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"one")
    cfg = {"path": str(weights)}
    key = run_key(cfg)
    weights.write_bytes(b"two")  # same size, new content (and time)
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert run_key(cfg) != key
    with pytest.raises(TypeError, match="expected JSON-like values"):
        run_key({"x": object()})


def test_digests_are_cached_by_path_size_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    import net2net.io

    hashed: list[str] = []
    real = net2net.io.file_digest
    monkeypatch.setattr(net2net.io, "file_digest", lambda p: hashed.append(str(p)) or real(p))
    monkeypatch.setattr(runs, "_DIGESTS", {})
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"x" * 1000)
    first = runs.file_digests([str(f)])
    assert runs.file_digests([str(f)]) == first and len(hashed) == 1
    assert (tmp_path / "cache" / "digests.json").is_file()
    monkeypatch.setattr(runs, "_DIGESTS", {})  # a new process: the digest comes from digests.json
    assert runs.file_digests([str(f)]) == first and len(hashed) == 1
    f.write_bytes(b"y" * 1001)
    assert runs.file_digests([str(f)]) != first and len(hashed) == 2


def test_one_cache_root_for_every_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from net2net.reproduce.experiment import runs_root
    from net2net.serve.discovery import main_job_run
    from net2net.training.run import default_log_dir
    from net2net.training.translation import TranslationDataModule

    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "c"))
    root = tmp_path / "c"
    assert runs.cache_root() == root and runs.runs_dir() == root / "runs"
    assert runs_root(None) == root / "runs" / "reproduce"
    assert default_log_dir("configs/autoencoder/fashion_mnist.yaml") == root / "runs" / "fashion_mnist"
    assert main_job_run().parent == root / "runs" and main_job_run().name.startswith("text2image-")
    dm = TranslationDataModule(source={"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}},
                               target={"target": "built.on.first.use"}, train={"target": "net2net.data.Digits"})  # fmt: skip
    assert dm.cache_root == root / "latents"
    fitted: list[str] = []
    monkeypatch.setattr("net2net.training.fit.fit", lambda source, target, out, *a, **k: fitted.append(out) or Path(out))
    assert main(["fit", "--source", "a.npy", "--target", "b.npy"]) == 0 and fitted == [str(root / "runs" / "fit-a-b")]
    assert main(["report"]) == 2 and str(root / "runs") in capsys.readouterr().err  # the default folder (not there)
    monkeypatch.delenv("NET2NET_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runs.cache_root() == tmp_path / "home" / ".cache" / "net2net"


def test_list_runs_describes_each_run(trained: dict, tmp_path: Path) -> None:
    infos = list_runs(trained["root"])
    assert {i.path for i in infos} == {trained[k].path for k in ("first", "changed", "new_weights")}
    first = next(i for i in infos if i.path == trained["first"].path)
    assert isinstance(first, RunInfo) and first.name == "labels" and first.key == trained["first"].key
    assert first.finished and first.steps == 4 and first.translation == "LabelEncoder -> ae"
    assert first.held_out_nats_per_dim is not None and abs(first.held_out_nats_per_dim) < 100
    assert [i.name for i in infos] == ["labels"] * 3 and infos[0].updated >= infos[-1].updated  # newest first
    # folders of other makers: net2net train (no run.json, no key), an unfinished run, a nested reproduce/ run
    (tmp_path / "fashion_mnist").mkdir()
    (tmp_path / "fashion_mnist" / "config.yaml").write_text("model: {target: net2net.training.autoencoder.X}\n")
    (tmp_path / "reproduce" / "diagnosis-early-cinn-0123456789ab" / "checkpoints").mkdir(parents=True)
    (tmp_path / "reproduce" / "diagnosis-early-cinn-0123456789ab" / "config.yaml").write_text("seed: 0\n")
    listed = {i.name: i for i in list_runs(tmp_path)}
    assert listed["fashion_mnist"].key == "" and listed["fashion_mnist"].translation == "X"
    assert listed["diagnosis-early-cinn"].key == "0123456789ab" and not listed["diagnosis-early-cinn"].finished
    assert list_runs(tmp_path / "missing") == []


def test_resolve_run_names_the_newest_finished_run(trained: dict, tmp_path: Path) -> None:
    root = trained["root"]
    newest = trained["new_weights"].path
    assert resolve_run("labels", root) == newest
    assert resolve_run(trained["first"].path.name, root) == trained["first"].path  # a folder name
    assert resolve_run(str(tmp_path)) == tmp_path  # a path stays a path
    assert resolve_run("runs/nothing", root) == Path("runs/nothing")  # not a bare name: the caller's error
    unfinished = root / "labels-ffffffffffff"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "run.json").write_text(json.dumps({"name": "labels", "key": "ffffffffffff"}))
    try:
        assert resolve_run("labels", root) == newest  # newer, but not finished
    finally:
        (unfinished / "run.json").unlink()
        (unfinished / "checkpoints").rmdir()
        unfinished.rmdir()
    with pytest.raises(FileNotFoundError, match=r"no finished run of that name .*finished runs: labels"):
        resolve_run("text2image", root)


def test_run_names_in_from_run_and_the_cli(trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from net2net.apps.translate import Net2Net

    monkeypatch.setenv("NET2NET_CACHE", str(trained["root"].parent))
    model = Net2Net.from_run("labels")
    assert model.tau.dim == 8
    assert main(["translate", "labels", "--labels", "0", "3", "-n", "2", "--out", str(tmp_path / "t")]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [2, 2, 1, 28, 28]
    assert main(["translate", "nosuchrun", "--labels", "0", "--out", str(tmp_path / "t")]) == 2
    assert "no finished run of that name" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nosuchrun"):
        Net2Net.from_run("nosuchrun")


def test_cli_runs_table_and_json(trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["runs", "--root", str(trained["root"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["name", "key", "finished", "steps", "held-out"] and len(lines) == 4
    assert any(trained["first"].key in line and " yes " in line and str(trained["first"].path) in line
               for line in lines)  # fmt: skip
    monkeypatch.setenv("NET2NET_CACHE", str(trained["root"].parent))  # the default root
    assert main(["runs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in rows} == {trained[k].key for k in ("first", "changed", "new_weights")}
    assert all(isinstance(r["held_out_nats_per_dim"], float) and r["steps"] in (4, 5) for r in rows)
    assert main(["runs", "--root", str(tmp_path / "empty")]) == 0
    assert "no run folders" in capsys.readouterr().out


def test_listing_runs_imports_neither_lightning_nor_torch(trained: dict) -> None:
    code = ("import sys; from net2net.training.runs import format_table, list_runs, resolve_run; "
            f"r = list_runs({str(trained['root'])!r}); format_table(r); resolve_run('labels', {str(trained['root'])!r}); "
            "print(len(r), sorted(m for m in ('lightning', 'torch') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "3 []"
